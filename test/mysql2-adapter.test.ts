// The mysql2-pool adapter's own API, both call forms, as Drizzle and Kysely use it and as
// plain mysql2 code would: callbacks, streams, release, misuse.
import t, { type Test } from 'tap';
import mysql from 'mysql2/promise';
import type { Connection, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { createPool, type PoolConnection as LentPoolConnection } from '../lib/pool/index.js';
import { ConnectionReleasedError, PoolClosedError } from '../lib/errors.js';
import { createMysql2Adapter, Mysql2AdapterConnection, type Mysql2PoolAdapter, type StatementCallback } from '../lib/mysql2-adapter/index.js';
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

t.test('the pool emits no connection event: subscribing to it throws, pointing to onConnect / initSql', async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  let made = 0;
  plain.on('connection', () => made++);
  await plain.query('SELECT 1');
  t.equal(made, 1, 'mysql2 runs connection setup in its connection event');

  const adapter = newAdapter(t);
  const listener = () => undefined;
  const subscriptions = {
    on: () => adapter.on('connection', listener),
    addListener: () => adapter.addListener('connection', listener),
    once: () => adapter.once('connection', listener),
    prependListener: () => adapter.prependListener('connection', listener),
    prependOnceListener: () => adapter.prependOnceListener('connection', listener),
  };
  for (const [method, subscribe] of Object.entries(subscriptions)) {
    t.throws(
      subscribe,
      { name: 'UnsupportedOperationError', code: UnsupportedOperationError.code, operation: method, message: /'connection'.*onConnect or initSql/ },
      method,
    );
  }
  t.equal(adapter.listenerCount('connection'), 0, 'nothing subscribed');
  adapter.on('acquire', listener).once('release', listener);
  t.equal(adapter.listenerCount('acquire') + adapter.listenerCount('release'), 2, 'other events subscribe as usual');
});

// Each promise-returning method of an adapter connection, and its callback form where it has one.
function connectionCalls(conn: Mysql2AdapterConnection) {
  const promises: Record<string, () => PromiseLike<unknown>> = {
    query: () => conn.query('SELECT 1'),
    execute: () => conn.execute('SELECT 1'),
    beginTransaction: () => conn.beginTransaction(),
    commit: () => conn.commit(),
    rollback: () => conn.rollback(),
    ping: () => conn.ping(),
    prepare: () => conn.prepare('SELECT 1'),
    changeUser: () => conn.changeUser({ user: 'root' }),
    reset: () => conn.reset(),
  };
  const callbacks: Record<string, (done: (err: unknown) => void) => void> = {
    query: (done) => conn.query('SELECT 1', done as StatementCallback),
    execute: (done) => conn.execute('SELECT 1', [], done as StatementCallback),
    beginTransaction: (done) => conn.beginTransaction(done),
    commit: (done) => conn.commit(done),
    rollback: (done) => conn.rollback(done),
    ping: (done) => conn.ping(done),
  };
  return { promises, callbacks };
}

async function rejectsNeverThrows(t: Test, conn: Mysql2AdapterConnection, wanted: unknown) {
  const { promises, callbacks } = connectionCalls(conn);
  for (const [name, call] of Object.entries(promises)) {
    let result: PromiseLike<unknown> | undefined;
    t.doesNotThrow(() => {
      result = call();
    }, `${name}() does not throw`);
    if (result !== undefined) await t.rejects(Promise.resolve(result), wanted as Error, `${name}() rejects`);
  }
  for (const [name, call] of Object.entries(callbacks)) {
    const err = await new Promise((resolve) => call(resolve));
    t.match(err, wanted, `${name}(callback) calls back with the error`);
  }
  const streamed = await conn.query('SELECT 1').stream().toArray().catch((err: unknown) => err);
  t.match(streamed, wanted, 'a stream errors');
}

t.test('once given back, promise methods reject and callbacks are called back, never a throw', async (t) => {
  const adapter = newAdapter(t);
  const conn = await adapter.getConnection();
  conn.release();
  await rejectsNeverThrows(t, conn, ConnectionReleasedError);
  await t.rejects(conn.connect(), ConnectionReleasedError, 'connect() rejects');
  const [connectErr] = await callback<[unknown]>((done) => conn.connect((e) => done([e])));
  t.type(connectErr, ConnectionReleasedError, 'connect(callback) calls back with the error');
  await t.resolves(conn.end(), 'end() gives it back, as release() does: a second time does nothing');
  t.throws(() => conn.destroy(), ConnectionReleasedError, 'destroy(), which returns nothing, throws');
});

t.test('a connection underneath that throws synchronously: the adapter still rejects, never throws', async (t) => {
  const thrown = new Error('thrown synchronously underneath');
  const underneath = new Proxy({}, {
    get: () => () => {
      throw thrown;
    },
  }) as LentPoolConnection;
  let released = 0;
  const conn = new Mysql2AdapterConnection({ conn: underneath, release: () => released++ });
  await rejectsNeverThrows(t, conn, thrown);
  conn.release();
  t.equal(released, 1, 'released once every command had failed');
});
