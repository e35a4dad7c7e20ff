// node_pg_client.js — node-postgres (npm `pg`, installed by scripts/install-deps.sh) driven by
// tests/integration/test_proxy_drivers.py: one action per run, its settings as JSON on stdin
// (the password never in argv or the environment), one JSON line with the outcome on stdout.
//   node node_pg_client.js NODE_MODULES_DIR < {"action": ..., "host", "port", "user", "password", ...}
// Actions:
//   params     log in; {"params": every ParameterStatus seen during the login}
//   login      log in and run SELECT 1; {"ok": true} or {"ok": false, "code", "message"}
//   terminate  log in, start `sql`, after `after_ms` end the connection (Terminate) while it
//              runs; {"end_ms": how long client.end() took}
//   idle_fatal log in, print {"pid": its backend}, then sit idle until the connection ends
//              (within 20 s); {"code": the SQLSTATE of the error it got, "ended": true}
'use strict';
const path = require('path');
const { Client } = require(path.join(process.argv[2], 'pg'));
const { run } = require('./node_stdio');

async function main(cfg) {
  const client = new Client({
    host: cfg.host, port: cfg.port, user: cfg.user, password: cfg.password,
    database: cfg.database || 'postgres', application_name: cfg.application_name,
    connectionTimeoutMillis: 10000,
  });
  const params = {};
  client.connection.on('parameterStatus', (m) => { params[m.parameterName] = m.parameterValue; });
  const ended = new Promise((resolve) => {
    let code = null;
    // The ErrorResponse as it came on the wire (an idle client's 'error' event may not carry it).
    client.connection.on('errorMessage', (m) => { code = m.code || null; });
    client.on('error', () => {});
    client.on('end', () => resolve(code));
  });
  if (cfg.action === 'login') {
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return { ok: true };
    } catch (err) {
      return { ok: false, code: err.code || null, message: err.message };
    }
  }
  await client.connect();
  if (cfg.action === 'params') {
    await client.end();
    return { params };
  }
  if (cfg.action === 'terminate') {
    const running = client.query(cfg.sql).catch(() => {});
    await new Promise((r) => setTimeout(r, cfg.after_ms));
    const t0 = Date.now();
    await client.end();
    const endMs = Date.now() - t0;
    await Promise.race([running, new Promise((r) => setTimeout(r, 100))]);
    return { end_ms: endMs };
  }
  if (cfg.action === 'idle_fatal') {
    const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    process.stdout.write(JSON.stringify({ pid }) + '\n');
    const code = await Promise.race([ended, new Promise((r) => setTimeout(() => r('timeout'), 20000))]);
    return { code, ended: code !== 'timeout' };
  }
  throw new Error(`unknown action ${cfg.action}`);
}

run(main);
