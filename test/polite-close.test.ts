// Closing politely (defect 13). A client that closes without COM_QUIT is counted by the server
// as an aborted client (Aborted_clients) and, with log_warnings >= 2, logged as "Aborted
// connection": noise that hides real network faults from the DBA. mysql2 runs end()'s
// callback before it writes the QUIT packet, and the pool used to destroy the socket in that
// callback, so QUIT was never sent: every eviction and every end() counted as aborted.
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { openConnections } from './helpers/sql.js';

const server = await startServer(t);

/** The server's Aborted_clients counter. Read on a connection of its own, closed politely. */
async function abortedClients(): Promise<number> {
  const rows = await server.query<Array<RowDataPacket & { Value: string }>>("SHOW GLOBAL STATUS LIKE 'Aborted_clients'");
  return Number(rows[0]!.Value);
}

/**
 * Waits until none of `ids` is open on the server any more: the server has handled each
 * close, so Aborted_clients already counts it if it was aborted. False after `timeoutMs`.
 */
async function goneFromServer(ids: Iterable<number>, timeoutMs: number): Promise<boolean> {
  const wanted = [...ids];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await server.query<Array<RowDataPacket & { ID: number }>>('SELECT ID FROM information_schema.PROCESSLIST');
    const open = new Set(rows.map((r) => Number(r.ID)));
    if (wanted.every((id) => !open.has(id))) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

t.test('baseline: the admin helper and a plain mysql2 pool close without an aborted client', async (t) => {
  const before = await abortedClients();
  // The helper's own connections (conn.end(): QUIT sent) must not count, or the tests below
  // would measure them.
  for (let i = 0; i < 3; i++) await server.query('SELECT 1');
  t.equal(await abortedClients(), before, 'the helper closes politely');

  const plain = mysql.createPool({ uri: server.url, connectionLimit: 3 });
  const ids = await Promise.all(
    [0, 1, 2].map(async () => {
      const [rows] = await plain.query<Array<RowDataPacket & { id: number }>>('SELECT CONNECTION_ID() AS id, SLEEP(0.05)');
      return rows[0]!.id;
    }),
  );
  await plain.end();
  t.ok(await goneFromServer(ids, 5_000), 'the plain pool closed its connections');
  t.equal(await abortedClients(), before, "mysql2's pool end(): no aborted client");
});

t.test('evictions (idleTimeout, maxAge) and end() send COM_QUIT: no aborted client', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, min: 0, max: 3, idleTimeout: 300, maxAge: 800, logger: log.logger });
  t.teardown(() => pool.end());
  const ids = new Set<number>();
  pool.on('create', (e) => ids.add(e.connId));
  const before = await abortedClients();

  // idleTimeout: three connections, left idle until the pool closes them all (min 0).
  await openConnections(pool, 3);
  const deadline = Date.now() + 3_000;
  while (pool.stats().size !== 0 && Date.now() < deadline) await sleep(20);
  t.equal(pool.stats().destroyed.idleTimeout, 3, 'three connections closed for idleTimeout');

  // maxAge: one connection kept busy past its age limit is replaced.
  const busyUntil = Date.now() + 1_500;
  while (Date.now() < busyUntil && (pool.stats().destroyed.maxAge ?? 0) === 0) {
    await pool.query('SELECT 1');
    await sleep(20);
  }
  t.ok((pool.stats().destroyed.maxAge ?? 0) >= 1, 'a connection closed for maxAge');

  // end(): whatever is still open.
  await pool.query('SELECT 1');
  t.ok(pool.stats().size >= 1, 'connections still open for end() to close');
  await pool.end();
  t.ok((pool.stats().destroyed.poolEnded ?? 0) >= 1, 'closed by end()');

  t.ok(await goneFromServer(ids, 5_000), `all ${ids.size} connections of the pool are gone from the server`);
  const after = await abortedClients();
  t.comment(`${ids.size} connections closed by the pool (${JSON.stringify(pool.stats().destroyed)}); Aborted_clients ${before} -> ${after}`);
  t.equal(after - before, 0, 'no connection the pool closed counts as an aborted client');
});
