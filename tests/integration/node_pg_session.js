// node_pg_session.js — node-postgres (npm `pg`) clients running a script of steps through the proxy,
// for tests/integration/test_proxy_session_drivers.py. Settings as JSON on stdin (the password never
// in argv or the environment); one JSON line on stdout: each step's rows, or its error's SQLSTATE.
//   node node_pg_session.js NODE_MODULES_DIR < {"host", "port", "user", "password", "clients": ["a", "b"],
//                                                 "steps": [[client, sql, params?], ...]}
// A step whose sql is "@notifications" answers the payloads the client received so far (they arrive
// while it sends nothing: node-postgres reads its socket all the time).
'use strict';
const path = require('path');
const { Client } = require(path.join(process.argv[2], 'pg'));
const { run } = require('./node_stdio');

async function main(cfg) {
  const clients = {};
  const notes = {};
  for (const name of cfg.clients) {
    const c = new Client({ host: cfg.host, port: cfg.port, user: cfg.user, password: cfg.password,
                           database: 'postgres', connectionTimeoutMillis: 10000 });
    c.on('error', () => {});
    notes[name] = [];
    c.on('notification', (n) => notes[name].push(n.payload));
    await c.connect();
    clients[name] = c;
  }
  const out = [];
  for (const [name, sql, params] of cfg.steps) {
    if (sql === '@notifications') {
      const until = Date.now() + 5000;
      while (notes[name].length < params && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      out.push(notes[name].slice());
      continue;
    }
    try {
      const r = await clients[name].query({ text: sql, values: params || undefined, rowMode: 'array' });
      out.push(r.rows || []);
    } catch (err) {
      out.push({ error: err.code || err.message });
    }
  }
  for (const c of Object.values(clients))
    await c.end();
  return out;
}

run(main);
