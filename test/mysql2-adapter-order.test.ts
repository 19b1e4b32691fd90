// The adapter's connection keeps mysql2's command order: commands run in the order they were
// called, whatever their form (promise, callback, stream, query, execute), awaited or not, and
// a command issued before release() still runs. Each scenario runs first on a plain mysql2
// pool, to show what mysql2 does, then on the adapter, which must do the same.
import t, { type Test } from 'tap';
import type { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { createPool } from '../lib/pool/index.js';
import { ConnectionReleasedError } from '../lib/errors.js';
import { createMysql2Adapter } from '../lib/mysql2-adapter/index.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';
import { within } from './helpers/settle.js';

const server = await startServer(t);
await server.query('CREATE TABLE ordered (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40) NOT NULL)');

// Every unhandled rejection of this file: mysql2 raises none in these scenarios, so neither
// may the adapter (one from a query sent after its connection was given back crashed the process).
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => {
  unhandled.push(reason);
});

type Done = (err: Error | null, rows?: unknown) => void;

// The promise forms both sides offer.
interface PromiseApi {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  execute(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  ping(): Promise<void>;
  beginTransaction(): Promise<void>;
  rollback(): Promise<void>;
}

// The callback forms both sides offer (mysql2: the promise connection's `.connection`).
interface CallbackApi {
  query(sql: string, values: unknown[], done: Done): unknown;
  query(sql: string, values: unknown[]): { stream(options?: { objectMode?: boolean }): Readable };
  execute(sql: string, values: unknown[], done: Done): unknown;
}

interface Borrowed {
  promise: PromiseApi;
  callback: CallbackApi;
  release(): void;
}

interface Side {
  name: string;
  getConnection(): Promise<Borrowed>;
  /** A statement on the pool itself, promise form. */
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  /** The pool itself, promise forms. */
  pool: PromiseApi;
  /** The pool itself, callback forms (mysql2: the promise pool's `.pool`). */
  poolCallback: CallbackApi;
}

// A plain mysql2 pool and the adapter, each with one connection, so a later borrow waits for
// the connection to come back.
function sides(t: Test): Side[] {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const adapter = createMysql2Adapter(pool);
  return [
    {
      name: 'mysql2',
      getConnection: async () => {
        const conn = await plain.getConnection();
        return { promise: conn as unknown as PromiseApi, callback: conn.connection as unknown as CallbackApi, release: () => conn.release() };
      },
      query: (sql, values) => plain.query(sql, values) as Promise<[unknown, unknown]>,
      pool: plain as unknown as PromiseApi,
      poolCallback: plain.pool as unknown as CallbackApi,
    },
    {
      name: 'adapter',
      getConnection: async () => {
        const conn = await adapter.getConnection();
        return { promise: conn as unknown as PromiseApi, callback: conn.connection as unknown as CallbackApi, release: () => conn.release() };
      },
      query: (sql, values) => adapter.query(sql, values as never),
      pool: adapter as unknown as PromiseApi,
      poolCallback: adapter as unknown as CallbackApi,
    },
  ];
}

const viaCallback = (issue: (done: Done) => unknown) =>
  new Promise<unknown>((resolve, reject) => {
    issue((err, rows) => (err ? reject(err) : resolve(rows)));
  });

const rowsOf = (stream: Readable) => stream.toArray();

const append = (letter: string) => `SET @s = CONCAT(IFNULL(@s, ''), '${letter}')`;

async function values(side: Side, prefix: string): Promise<string[]> {
  const [rows] = await side.query('SELECT v FROM ordered WHERE v LIKE ? ORDER BY id', [`${prefix}%`]);
  return (rows as Array<{ v: string }>).map((r) => r.v);
}

t.test('an unawaited query runs before the statement called after it', async (t) => {
  for (const side of sides(t)) {
    const conn = await side.getConnection();
    void conn.promise.query('SET @x = 1');
    const [rows] = await conn.promise.execute('SELECT @x AS x');
    t.same(rows, [{ x: 1 }], side.name);
    conn.release();
  }
});

t.test('a statement called just before release() still runs, and nothing rejects', async (t) => {
  for (const side of sides(t)) {
    const conn = await side.getConnection();
    void conn.promise.query('INSERT INTO ordered (v) VALUES (?)', [`released-${side.name}`]);
    conn.release();
    // The next borrow gets the same connection, after what was queued on it.
    t.same(await values(side, `released-${side.name}`), [`released-${side.name}`], side.name);
    t.same(unhandled, [], `${side.name}: no unhandled rejection`);
  }
});

t.test('every form, called in one go on one connection, runs in call order', async (t) => {
  for (const side of sides(t)) {
    const conn = await side.getConnection();
    const { promise: p, callback: c } = conn;
    await p.query('SET @s = NULL');
    const settled = [
      p.query(append('a')),
      viaCallback((done) => c.query(append('b'), [], done)),
      p.execute(append('c')),
      viaCallback((done) => c.execute(append('d'), [], done)),
      rowsOf(c.query('SELECT CAST(@s AS CHAR) AS s', []).stream({ objectMode: true })),
      rowsOf(c.query(append('e'), []).stream()),
      p.ping(),
    ];
    const last = p.query('SELECT CAST(@s AS CHAR) AS s');
    const outcomes = await Promise.all(settled);
    t.same(outcomes[4], [{ s: 'abcd' }], `${side.name}: the stream saw what was called before it`);
    t.same((await last)[0], [{ s: 'abcde' }], side.name);
    conn.release();
  }
});

t.test('a transaction called without awaiting: begin, insert, rollback in that order', async (t) => {
  for (const side of sides(t)) {
    const conn = await side.getConnection();
    const { promise: p, callback: c } = conn;
    const v = `rolled-back-${side.name}`;
    const steps = [
      p.beginTransaction(),
      p.query('INSERT INTO ordered (v) VALUES (?)', [v]),
      viaCallback((done) => c.query('INSERT INTO ordered (v) VALUES (?)', [v], done)),
      p.rollback(),
    ];
    await Promise.all(steps);
    conn.release();
    t.same(await values(side, v), [], `${side.name}: both inserts were rolled back`);
  }
});

t.test('on the pool, one connection: statements run in call order, every form', async (t) => {
  for (const side of sides(t)) {
    const { pool, poolCallback } = side;
    const v = (n: number) => `pool-${side.name}-${n}`;
    const insert = 'INSERT INTO ordered (v) VALUES (?)';
    await Promise.all([
      pool.query(insert, [v(1)]),
      viaCallback((done) => poolCallback.execute(insert, [v(2)], done)),
      pool.execute(insert, [v(3)]),
      viaCallback((done) => poolCallback.query(insert, [v(4)], done)),
    ]);
    t.same(await values(side, `pool-${side.name}-`), [v(1), v(2), v(3), v(4)], side.name);
  }
});

t.test('destroy(): the statement sent finishes, the one queued behind it rejects unsent', async (t) => {
  for (const side of sides(t)) {
    const conn = await side.getConnection();
    const promise = conn.promise as PromiseApi & { destroy(): void };
    const first = within(promise.query('SELECT SLEEP(0.2) AS slept'), 5_000);
    const queued = within(promise.query('SELECT CONNECTION_ID() AS id'), 5_000);
    promise.destroy();
    const sent = await first;
    t.same(sent.status === 'fulfilled' ? sent.value[0] : sent, [{ slept: 0 }], `${side.name}: the statement sent completes`);
    const unsent = await queued;
    t.equal(unsent.status, 'rejected', `${side.name}: the one behind it rejects, not run on a replacement connection either`);
    t.match(unsent.status === 'rejected' ? unsent.reason : undefined, { fatal: true });
  }
});

t.test('adapter: a query called just before destroy() is sent, as mysql2 sends it at once; then the connection goes back', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const adapter = createMysql2Adapter(pool);
  const conn = await adapter.getConnection();
  const first = conn.query('SELECT 1 AS one');
  conn.destroy();
  t.same((await first)[0], [{ one: 1 }]);
  await pool.withConnection(() => undefined); // waits for the connection to be given back
  t.equal(pool.stats().borrowed, 0, 'given back');
  t.throws(() => conn.destroy(), ConnectionReleasedError);
});

t.test('adapter: a stream left early still lets the statements after it run', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const adapter = createMysql2Adapter(pool);
  const conn = await adapter.getConnection();
  // Enough rows to fill the stream's buffer, so the connection is paused when it is abandoned.
  const stream = conn.query('SELECT seq FROM seq_1_to_5000').stream({ highWaterMark: 2 });
  const after = conn.query<RowDataPacket[]>('SELECT 42 AS answer');
  for await (const row of stream) {
    t.same(row, { seq: 1 });
    break;
  }
  const outcome = await within(after, 5_000);
  t.same(outcome.status === 'fulfilled' ? outcome.value[0] : outcome, [{ answer: 42 }]);
  conn.release();
  await pool.withConnection(() => undefined);
  t.equal(pool.stats().borrowed, 0);
});

t.test('adapter: streamed statements are untracked, so the connection is rolled back on return', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const adapter = createMysql2Adapter(pool);
  const conn = await adapter.getConnection();
  // The pool never sees these OK packets: only the untracked flag tells it to clean up.
  await rowsOf(conn.query('START TRANSACTION').stream());
  await rowsOf(conn.query('INSERT INTO ordered (v) VALUES (?)', ['streamed']).stream());
  conn.release();
  const [rows] = await adapter.query<RowDataPacket[]>('SELECT COUNT(*) AS n, @@in_transaction AS inTx FROM ordered WHERE v = ?', ['streamed']);
  t.same(rows, [{ n: 0, inTx: 0 }], 'rolled back before the next borrower got it');
});

t.test('no unhandled rejection in this file', async (t) => {
  t.same(unhandled, []);
});
