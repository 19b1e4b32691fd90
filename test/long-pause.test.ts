// A long pause inside the borrower's own function: the server's wait_timeout (1 s here) closes
// the connection between two statements of the same `withConnection`. Plain mysql2 sends the
// second statement on the dead connection and fails. Our lent connection checks before each
// statement and, with no transaction open, swaps in a new connection unseen by `fn`; with a
// transaction open it refuses (TransactionLostError) and nothing is retried or committed.
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createPool, FreshPoolError, TransactionLostError, type PoolConnection } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, sleep, startServer } from './helpers/mariadb.js';

const server = await startServer(t, { waitTimeoutSeconds: 1 });
const skip = !server.canRestart && 'needs wait_timeout=1 on a private server';

/** Past the server's wait_timeout of 1 s, with room for its once-a-second granularity. */
const PAST_WAIT_TIMEOUT_MS = 2_500;

type IdRow = RowDataPacket & { id: number };

async function connectionId(conn: PoolConnection | mysql.Connection): Promise<number> {
  const [rows] = await conn.query<IdRow[]>('SELECT CONNECTION_ID() AS id');
  return rows[0]!.id;
}

async function serverHasConnection(id: number): Promise<boolean> {
  const rows = await server.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [id]);
  return Number(rows[0]!.n) > 0;
}

t.test('fault is real: a plain mysql2 connection paused past wait_timeout fails its next statement', { skip }, async (t) => {
  const conn = await mysql.createConnection(server.url);
  conn.on('error', () => {}); // the close arrives while idle; keep it from being an uncaught 'error'
  t.teardown(() => conn.destroy());
  await conn.query('SELECT 1');
  await sleep(PAST_WAIT_TIMEOUT_MS);
  await t.rejects(conn.query('SELECT 1'), /closed state|Connection lost|ECONNRESET|EPIPE/, 'the second statement fails');
});

t.test('withConnection: a statement after a pause past wait_timeout runs on a new connection', { skip }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  const [firstId, secondId, after] = await pool.withConnection(async (conn) => {
    const first = await connectionId(conn);
    await sleep(PAST_WAIT_TIMEOUT_MS);
    const second = await connectionId(conn); // must not reject
    const [rows] = await conn.query<Array<RowDataPacket & { two: number }>>('SELECT 1 + 1 AS two');
    return [first, second, rows[0]!.two];
  });
  t.not(secondId, firstId, 'the second statement ran on a different connection');
  t.equal(after, 2, 'and later statements keep working on it');
  t.notOk(await serverHasConnection(firstId), 'the old connection is gone from the server');

  // MariaDB 10.11 resets the socket at wait_timeout (mysql2: ECONNRESET, an 'error' event),
  // so the reason is connectionError; a server that sends a clean FIN gives closedByServer.
  const replaced = log.find('connection replaced before a statement');
  t.equal(replaced.length, 1, 'one replacement logged');
  t.match(replaced[0], { connId: secondId, replacedConnId: firstId, reason: /^(connectionError|closedByServer)$/ });
  const evicted = log.find('connection evicted');
  t.equal(evicted.length, 1);
  t.match(evicted[0], { connId: firstId, reason: replaced[0]?.reason });

  t.equal(await pool.withConnection(connectionId), secondId, 'the replacement went back into the pool (max 1)');
  t.equal(pool.stats().size, 1);
  t.equal(pool.stats().borrowed, 0);
});

t.test('withConnection: a busy event loop past wait_timeout between two statements', { skip }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  const [firstId, secondId] = await pool.withConnection(async (conn) => {
    const first = await connectionId(conn);
    busyWait(PAST_WAIT_TIMEOUT_MS); // the server's close sits unread meanwhile
    return [first, await connectionId(conn)];
  });
  t.not(secondId, firstId, 'ran on a new connection');
  t.equal(log.find('connection replaced before a statement').length, 1);
});

t.test('withConnection: a pause past connWaitAge but within wait_timeout pings and keeps the connection', { skip }, async (t) => {
  const pool = createPool({ connection: server.url, max: 1, connWaitAge: 200, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const [firstId, secondId, pings] = await pool.withConnection(async (conn) => {
    const first = await connectionId(conn);
    const before = pool.stats().pings;
    await sleep(400); // > connWaitAge 200, < wait_timeout 1 s
    const second = await connectionId(conn);
    return [first, second, pool.stats().pings - before];
  });
  t.equal(pings, 1, 'one ping before the statement');
  t.equal(secondId, firstId, 'the live connection was kept');
  t.equal(pool.stats().pingFailures, 0);
  t.equal(pool.stats().created, 1);
});

t.test('withTransaction: a pause past wait_timeout mid-transaction rejects with TransactionLostError, nothing committed', { skip }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  await server.query('CREATE TABLE lp_tx (id INT PRIMARY KEY)');

  let firstId = 0;
  let secondInsert: unknown = 'not reached';
  const err = await pool
    .withTransaction(async (conn) => {
      firstId = await connectionId(conn);
      await conn.query('INSERT INTO lp_tx VALUES (1)');
      await sleep(PAST_WAIT_TIMEOUT_MS);
      try {
        await conn.query('INSERT INTO lp_tx VALUES (2)');
        secondInsert = 'resolved';
      } catch (e) {
        secondInsert = e;
        throw e;
      }
    })
    .catch((e: unknown) => e);

  t.ok(err instanceof TransactionLostError, 'rejects with TransactionLostError');
  t.ok(err instanceof FreshPoolError);
  t.match(err, { code: 'ERR_FRESH_POOL_TRANSACTION_LOST', name: 'TransactionLostError' });
  t.equal(secondInsert, err, 'it is the second statement itself that rejected, and that error reaches the caller');
  t.ok((err as Error).cause instanceof Error, 'cause: why the connection was found dead');

  const rows = await server.query<unknown[]>('SELECT id FROM lp_tx');
  t.same(rows, [], 'no row at all: neither the first nor the second INSERT was committed');
  t.equal(pool.stats().created, 1, 'no reconnect under the open transaction');
  t.equal(log.find('connection replaced before a statement').length, 0, 'nothing replaced under the transaction');
  t.match(log.find('connection lost with a transaction open')[0], { connId: firstId });

  // The pool is fine afterwards: the dead connection was destroyed on return.
  const nextId = await pool.withConnection(connectionId);
  t.not(nextId, firstId, 'next borrow gets a new connection');
  t.equal(pool.stats().borrowed, 0);
});

t.test('withConnection with a hand-written BEGIN: the same refusal, tracked from the OK packet', { skip }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  await server.query('CREATE TABLE lp_begin (id INT PRIMARY KEY)');
  const err = await pool
    .withConnection(async (conn) => {
      await conn.query('BEGIN');
      await conn.query('INSERT INTO lp_begin VALUES (1)');
      await sleep(PAST_WAIT_TIMEOUT_MS);
      await conn.query('INSERT INTO lp_begin VALUES (2)');
      await conn.query('COMMIT');
    })
    .catch((e: unknown) => e);
  t.ok(err instanceof TransactionLostError, 'TransactionLostError, not a silent reconnect');
  t.same(await server.query('SELECT id FROM lp_begin'), [], 'nothing written');
  t.equal(log.find('connection replaced before a statement').length, 0);
});

t.test('a connection used moments ago costs no ping inside fn', { skip }, async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const outcome = await pool.withConnection(async (conn) => {
    await conn.query('SELECT 1'); // wait_timeout is known from here on
    const before = pool.stats();
    for (let i = 0; i < 100; i++) {
      await (i % 2 === 0 ? conn.query('SELECT ?', [i]) : conn.execute('SELECT ?', [i]));
    }
    const after = pool.stats();
    return { pings: after.pings - before.pings, created: after.created - before.created, connWaitAgeMs: after.connWaitAgeMs };
  });
  t.equal(outcome.connWaitAgeMs, 500, 'connWaitAge derived from wait_timeout 1 s');
  t.equal(outcome.pings, 0, '100 back-to-back statements: no ping');
  t.equal(outcome.created, 0, 'and no new connection');
});
