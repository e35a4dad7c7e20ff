// node_pg_session.js — node-postgres (npm `pg`) clients taking SQL steps one at a time, for the driver
// tests of the proxy (tests/integration/drivers.py): node node_pg_session.js NODE_MODULES_DIR.
// It speaks the protocol JdbcSession.java speaks:
// stdin: the host, the user and the password on three lines (never in argv or the environment), then
// one step per line, "client<TAB>sql" or "client<TAB>sql<TAB>param" (a text parameter: the extended
// protocol; without one node-postgres sends a simple Query). stdout: each step's answer on one line, as
// soon as it is known: the first row's columns as PostgreSQL's text joined by '|' (NULL as ""; "" when
// no row), or "ERROR:<SQLSTATE><TAB><message><TAB><hint>".
// Two steps are not SQL: "@connect" opens the client on the port given as param (database postgres);
// "@notifications" waits, 5 s at most, until the client has param notifications it has not answered
// yet (client.on('notification'): node-postgres reads its socket all the time), and answers their
// payloads joined by '|'.
'use strict';
const path = require('path');
const readline = require('readline');
const { Client } = require(path.join(process.argv[2], 'pg'));

// Every value as the server's text, as pgJDBC's getString() gives it.
const TEXT = { getTypeParser: () => (v) => v };

function oneLine(s) {
  return String(s || '').replace(/[\t\r\n]/g, ' ');
}

async function step(login, clients, notes, [name, sql, param]) {
  if (sql === '@notifications') {
    const until = Date.now() + 5000;
    while (notes[name].length < Number(param) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 10));
    return notes[name].splice(0).join('|');
  }
  try {
    return await query(login, clients, notes, name, sql, param);
  } catch (err) {
    return `ERROR:${err.code || ''}\t${oneLine(err.message)}\t${oneLine(err.hint)}`;
  }
}

async function query(login, clients, notes, name, sql, param) {
  if (sql === '@connect') {
    const c = new Client({ ...login, port: Number(param), database: 'postgres', connectionTimeoutMillis: 10000 });
    c.on('error', () => {});
    notes[name] = [];
    c.on('notification', (n) => notes[name].push(n.payload));
    await c.connect();
    clients[name] = c;
    return '';
  }
  const r = await clients[name].query({ text: sql, values: param === undefined ? undefined : [param],
                                        rowMode: 'array', types: TEXT });
  const first = Array.isArray(r) ? r[0] : r;   // a multi-statement Query: its first result
  const row = first.rows && first.rows[0];
  return row ? row.map((v) => (v === null ? '' : v)).join('|') : '';
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = async () => (await lines.next()).value;
  const login = { host: await next(), user: await next(), password: await next() };
  const clients = {};
  const notes = {};
  for (let line; (line = await next()) !== undefined;) {
    if (line !== '')
      process.stdout.write(await step(login, clients, notes, line.split('\t')) + '\n');
  }
  for (const c of Object.values(clients))
    await c.end();
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
