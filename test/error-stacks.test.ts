// A failed statement's error must point at the user's code. mysql2 pays for that with a stack
// captured on every statement (`trace`, on by default): the largest cost on the whole path.
// By default this pool captures nothing on success and re-stamps a failure where it is
// awaited, so V8's async stack trace lists the user's awaiting functions.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { createMysql2Adapter, createPool, type FreshPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t);

function poolWith(t: { teardown(fn: () => unknown): void }, trace?: boolean): FreshPool {
  const connection = trace === undefined ? server.url : { uri: server.url, trace };
  const pool = createPool({ connection, max: 2, logger: captureLog().logger });
  t.teardown(() => pool.end());
  return pool;
}

async function loadOrdersForReport(pool: FreshPool): Promise<unknown> {
  return await pool.withConnection(async (conn) => {
    await conn.query('SELECT 1');
    const [rows] = await conn.query('SELECT * FROM no_such_orders_table'); // FAILS HERE
    return rows;
  });
}

async function shortcutQuery(pool: FreshPool): Promise<unknown> {
  const [rows] = await pool.query('SELECT * FROM no_such_table_either');
  return rows;
}

async function transferInTransaction(pool: FreshPool): Promise<unknown> {
  return await pool.withTransaction(async (conn) => {
    await conn.execute('UPDATE no_such_accounts SET balance = 0 WHERE id = ?', [1]);
  });
}

type Failure = Error & { code?: string };
/** How many times `Error.captureStackTrace` ran while `work` ran. */
async function stackCapturesDuring(work: () => Promise<unknown>): Promise<number> {
  const original = Error.captureStackTrace;
  let captures = 0;
  Error.captureStackTrace = function (...args: Parameters<typeof original>) {
    captures++;
    return original.apply(this, args);
  };
  try {
    await work();
  } finally {
    Error.captureStackTrace = original;
  }
  return captures;
}

const failure = (p: Promise<unknown>): Promise<Failure> =>
  p.then(
    () => new Error('expected a failure') as Failure,
    (e: unknown) => e as Failure,
  );

t.test('default: the stack names the awaiting user function and this file', async (t) => {
  const pool = poolWith(t);
  for (const [fn, name] of [
    [loadOrdersForReport, 'loadOrdersForReport'],
    [shortcutQuery, 'shortcutQuery'],
    [transferInTransaction, 'transferInTransaction'],
  ] as const) {
    const err = await failure(fn(pool));
    t.equal(err.code, 'ER_NO_SUCH_TABLE', `${name}: the server's error, untouched`);
    t.match(err.stack, /^Error: Table '.*' doesn't exist\n/, `${name}: the message heads the stack`);
    t.match(err.stack, new RegExp(`at async ${name} \\(.*error-stacks\\.test\\.ts:\\d+`), `${name}: the user's function and file are in the stack`);
    t.notMatch(err.stack, /processTicksAndRejections/, `${name}: no microtask-queue noise`);
  }
  // The function that ran the failing statement, at the line of its await.
  const err = await failure(loadOrdersForReport(pool));
  const line = readFileSync(new URL(import.meta.url), 'utf8').split('\n').findIndex((l) => l.includes('// FAILS HERE')) + 1;
  t.match(err.stack, new RegExp(`\\n {4}at async .*error-stacks\\.test\\.ts:${line}:`), `the first frame is the failing await, line ${line}`);
});

t.test('default: nothing is captured for a statement that succeeds', async (t) => {
  const pool = poolWith(t);
  await pool.query('SELECT 1'); // first connection made, wait_timeout read
  const captures = await stackCapturesDuring(() =>
    pool.withConnection(async (conn) => {
      for (let i = 0; i < 20; i++) await conn.query('SELECT ?', [i]);
    }),
  );
  t.equal(captures, 0, 'no stack captured on the success path');
});

t.test('trace: true set explicitly: mysql2\'s way, a stack captured per statement', async (t) => {
  const pool = poolWith(t, true);
  await pool.query('SELECT 1');
  const captures = await stackCapturesDuring(() => pool.withConnection((conn) => conn.query('SELECT 1')));
  t.ok(captures >= 1, `captured on success too (${captures})`);
  const err = await failure(loadOrdersForReport(pool));
  t.match(err.stack, /error-stacks\.test\.ts/, 'the stack points at this file');
});

t.test('trace: false set explicitly: no user frames, as with mysql2', async (t) => {
  const pool = poolWith(t, false);
  const err = await failure(loadOrdersForReport(pool));
  t.equal(err.code, 'ER_NO_SUCH_TABLE');
  t.notMatch(err.stack, /loadOrdersForReport/);
});

t.test('through the mysql2 adapter, promise form (Drizzle)', async (t) => {
  const pool = poolWith(t);
  const adapter = createMysql2Adapter(pool);
  async function drizzleStyleRepository(): Promise<unknown> {
    const [rows] = await adapter.query('SELECT * FROM no_such_repo_table');
    return rows;
  }
  const err = await failure(drizzleStyleRepository());
  t.match(err.stack, /at async drizzleStyleRepository \(.*error-stacks\.test\.ts/);
});

t.test('a callback caller gets the error with a stack, never an empty one', async (t) => {
  const pool = poolWith(t);
  const adapter = createMysql2Adapter(pool);
  const err = await new Promise<Error>((resolve) => adapter.query('SELECT * FROM no_such_cb_table', (e) => resolve(e as Error)));
  t.match(err.stack, /\n    at /, 'some frames: callback callers have no awaiting function to point at');
});
