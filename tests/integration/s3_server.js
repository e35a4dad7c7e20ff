// s3_server.js — the S3-compatible server the integration tests run pgBackRest against:
// @20minutes/s3rver (installed by scripts/install-deps.sh) over HTTPS, with the access key
// pair read from files so no key shows in argv, and s3rver's built-in S3RVER/S3RVER pair
// revoked. Usage: node s3_server.js MODULES_DIR CONFIG.json; prints "listening PORT" once
// it accepts connections (port 0 in the config: the kernel picks a free one).
'use strict';

const fs = require('fs');
const path = require('path');

const [modules, configPath] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const pkg = path.join(modules, '@20minutes', 's3rver');

// pgBackRest signs a bucket-level request (a listing) over the path it sends, "/BUCKET/", as
// SigV4 wants; s3rver 4.0.4 checks it against "/BUCKET" and answers SignatureDoesNotMatch.
// Wrap its authentication so the trailing slash counts, before its router loads it.
const authPath = require.resolve(path.join(pkg, 'lib', 'middleware', 'authentication'));
const authFactory = require(authPath);
require.cache[authPath].exports = () => {
  const auth = authFactory();
  return async (ctx, next) => {
    const bucket = ctx.params.bucket;
    if (bucket && !ctx.params.key && ctx.path.endsWith('/'))
      ctx.params.bucket = bucket + '/';
    try {
      return await auth(ctx, () => {
        ctx.params.bucket = bucket;
        return next();
      });
    } finally {
      ctx.params.bucket = bucket;
    }
  };
};
const S3rver = require(pkg);
const AWSAccount = require(path.join(pkg, 'lib', 'models', 'account'));

const firstLine = (file) => fs.readFileSync(file, 'utf8').split('\n')[0];
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(firstLine(cfg.access_key_file), firstLine(cfg.secret_key_file));

const server = new S3rver({
  address: cfg.address,
  port: cfg.port,
  key: fs.readFileSync(cfg.tls_key),
  cert: fs.readFileSync(cfg.tls_cert),
  directory: cfg.directory,
  silent: !cfg.verbose,
  vhostBuckets: false,
  configureBuckets: (cfg.buckets || []).map((name) => ({ name })),
});
server.run().then((addr) => {
  process.stdout.write(`listening ${addr.port}\n`);
}, (err) => {
  process.stderr.write(`s3_server: ${err.stack || err}\n`);
  process.exit(1);
});
// Stopped by the test at its end: nothing to keep, so no wait for idle keep-alive connections.
for (const sig of ['SIGTERM', 'SIGINT'])
  process.on(sig, () => process.exit(0));
