// node_stdio.js — what the node-postgres test scripts share: their settings come as JSON on
// stdin (a password never in argv or the environment), their outcome goes as one JSON line on
// stdout, exit 0; an exception as {"error": ...}, exit 1.
'use strict';

function readStdin() {
  return new Promise((resolve) => {
    let data = '';
    process.stdin.on('data', (chunk) => { data += chunk; });
    process.stdin.on('end', () => resolve(JSON.parse(data)));
  });
}

function run(main) {
  readStdin().then(main).then((out) => {
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  }, (err) => {
    process.stdout.write(JSON.stringify({ error: String(err && err.stack || err) }) + '\n');
    process.exit(1);
  });
}

module.exports = { run };
