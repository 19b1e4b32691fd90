// The mysql2-pool adapter's own API, both call forms, as Drizzle and Kysely use it and as
// plain mysql2 code would: callbacks, streams, release, misuse.
import t from 'tap';
import type { Connection, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { createPool } from '../lib/pool.js';
import { ConnectionReleasedError, PoolClosedError } from '../lib/errors.js';
import { createMysql2Adapter, Mysql2AdapterConnection, type Mysql2PoolAdapter } from '../lib/mysql2-adapter.js';
import { UnsupportedOperationError } from '../lib/errors.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t);

function newAdapter(t: { teardown(fn: () => unknown): void }): Mysql2PoolAdapter {
  const pool = createPool({ connection: server.url, max: 2, logger: captureLog().logger });
  t.teardown(() => pool.end());
  return createMysql2Adapter(pool);
}

const callback = <A extends unknown[]>(fn: (resolve: (args: A) => void) => void) => new Promise<A>((resolve) => fn(resolve));

t.test('typed as mysql2: the adapter is a promise Connection, its connections PoolConnections', async (t) => {
  const adapter = newAdapter(t);
  const asConnection: Connection = adapter;
  const conn = await adapter.getConnection();
  const asPoolConnection: PoolConnection = conn;
  t.ok(asConnection && asPoolConnection);
  t.equal(conn.connection, conn, 'its callback connection is itself');
  conn.release();
  conn.release();
  t.equal(adapter.freshPool.stats().borrowed, 0, 'release is idempotent');
});

t.test('pool: promise and callback forms of query and execute', async (t) => {
  const adapter = newAdapter(t);
  const [rows] = await adapter.query<RowDataPacket[]>('SELECT ? AS a', [1]);
  t.same(rows, [{ a: 1 }]);
  const [executed] = await adapter.execute<RowDataPacket[]>({ sql: 'SELECT ? AS b', rowsAsArray: true }, [2]);
  t.same(executed, [[2]]);
  const [err, result, fields] = await callback<[unknown, unknown, unknown]>((done) => adapter.query('SELECT 3 AS c', (...args) => done(args)));
  t.equal(err, null);
  t.same(result, [{ c: 3 }]);
  t.ok(Array.isArray(fields));
  const [err2, result2] = await callback<[unknown, unknown]>((done) => adapter.execute('SELECT ? AS d', [4], (e, r) => done([e, r])));
  t.equal(err2, null);
  t.same(result2, [{ d: 4 }]);
  const [bad] = await callback<[unknown]>((done) => adapter.query('SELEKT', [], (e) => done([e])));
  t.match(bad, { code: 'ER_PARSE_ERROR' });
  t.equal(adapter.format('SELECT ?, ??', ["it's", 'col']), "SELECT 'it\\'s', `col`");
});

t.test('connection: callback forms, transactions, stream, end', async (t) => {
  const adapter = newAdapter(t);
  const conn = await callback<[Error | null, Mysql2AdapterConnection]>((done) => adapter.getConnection((...args) => done(args)));
  t.equal(conn[0], null);
  const c = conn[1];
  t.type(c, Mysql2AdapterConnection);
  await c.query('CREATE TEMPORARY TABLE t (id INT PRIMARY KEY)');
  await callback<[unknown]>((done) => c.beginTransaction((e) => done([e])));
  const [err, header] = await callback<[unknown, unknown]>((done) => c.query('INSERT INTO t VALUES (?), (?)', [1, 2], (e, r) => done([e, r])));
  t.equal(err, null);
  t.match(header, { affectedRows: 2 });
  await c.rollback();
  t.same((await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM t'))[0], [{ n: 0 }], 'rolled back');
  await c.query('INSERT INTO t VALUES (1), (2), (3)');

  const streamed: unknown[] = [];
  for await (const row of c.query('SELECT id FROM t ORDER BY id').stream()) streamed.push(row);
  t.same(streamed, [{ id: 1 }, { id: 2 }, { id: 3 }]);

  // A query not awaited still runs, as with mysql2's promise API.
  void c.query('INSERT INTO t VALUES (4)');
  t.same((await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM t'))[0], [{ n: 4 }]);

  const sent = c.query('SELECT 1');
  await sent;
  t.throws(() => sent.stream(), UnsupportedOperationError, 'stream() after the query was sent');
  const read = c.query('SELECT 1');
  const stream = read.stream();
  for await (const _ of stream);
  await t.rejects(read.then(), UnsupportedOperationError, 'then() after stream()');

  await c.end();
  await t.rejects(c.query('SELECT 1'), ConnectionReleasedError, 'end() gave it back');
  const [afterRelease] = await callback<[unknown]>((done) => c.query('SELECT 1', [], (e) => done([e])));
  t.type(afterRelease, ConnectionReleasedError);
});

t.test('pool: what needs one connection throws UnsupportedOperationError', async (t) => {
  const adapter = newAdapter(t);
  await t.rejects(adapter.beginTransaction(), { code: UnsupportedOperationError.code, operation: 'beginTransaction' });
  await t.rejects(adapter.prepare('SELECT 1'), UnsupportedOperationError);
  t.throws(() => adapter.destroy(), UnsupportedOperationError);
  await adapter.ping();
});

t.test('end(callback) ends the pool; getConnection then fails with PoolClosedError', async (t) => {
  const adapter = newAdapter(t);
  await adapter.query('SELECT 1');
  const [endErr] = await callback<[unknown]>((done) => adapter.end((e) => done([e])));
  t.equal(endErr, null);
  t.equal(adapter.state, 'disconnected');
  const [err, conn] = await callback<[unknown, unknown]>((done) => adapter.getConnection((...args) => done(args)));
  t.type(err, PoolClosedError);
  t.equal(conn, undefined);
});
