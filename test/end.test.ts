// end(): stops lending at once, lets the work already running (or queued) finish, then closes
// every connection; safe to call twice.
import t from 'tap';
import { createPool, FreshPoolError, PoolClosedError } from '../lib/index.js';
import { runChild } from './helpers/child.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t, {});

async function serverHas(ids: number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await server.query<Array<{ ID: number }>>(
    `SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (${ids.map(() => '?').join(',')})`,
    ids,
  );
  return rows.map((r) => Number(r.ID));
}

t.test('end() with work in flight', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 3, logger: log.logger });
  t.teardown(() => pool.end());

  // Three connections: the in-flight work will hold one, two stay idle.
  const ids = new Set<number>();
  await Promise.all([0, 1, 2].map(() => pool.withConnection(async (c) => {
    const [rows] = await c.query<any[]>('SELECT CONNECTION_ID() AS id, SLEEP(0.05)');
    ids.add(rows[0].id);
  })));

  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  let workDone = false;
  const result = { done: true };
  const inFlight = pool.withConnection(async (conn) => {
    ids.add(conn.threadId!);
    started();
    await conn.query('SELECT SLEEP(0.5)');
    workDone = true;
    return result;
  });
  await running;
  t.equal(pool.stats().borrowed, 1, 'one connection lent');
  t.equal(ids.size, 3, 'three connections in play');
  t.equal((await serverHas([...ids])).length, 3, 'the pool\'s connections exist on the server before end()');

  let workDoneWhenEnded: boolean | undefined;
  const firstEnd = pool.end().then(() => {
    workDoneWhenEnded = workDone;
  });

  // Borrowing after end() rejects at once, without calling fn.
  let lateFnCalled = false;
  const late = pool.withConnection(() => {
    lateFnCalled = true;
  });
  await t.rejects(late, PoolClosedError, 'a borrow after end() rejects with PoolClosedError');
  const lateErr = await late.catch((e: unknown) => e);
  t.ok(lateErr instanceof FreshPoolError);
  t.equal((lateErr as PoolClosedError).code, 'ERR_FRESH_POOL_CLOSED');
  t.equal((lateErr as PoolClosedError).name, 'PoolClosedError');
  t.equal(lateFnCalled, false, 'its fn was never called');
  await t.rejects(pool.query('SELECT 1'), { code: 'ERR_FRESH_POOL_CLOSED' }, 'pool.query after end() too');
  await t.rejects(pool.execute('SELECT 1'), { code: 'ERR_FRESH_POOL_CLOSED' }, 'pool.execute after end() too');
  t.equal(workDone, false, 'the in-flight work was still running when the late borrow was refused');

  t.equal(await inFlight, result, 'the in-flight call resolved normally, with its result');
  await firstEnd;
  t.equal(workDoneWhenEnded, true, 'end() resolved only after the in-flight work finished');

  const s = pool.stats();
  t.equal(s.size, 0, 'no connections left in the pool');
  t.equal(s.borrowed, 0);
  t.equal(s.destroyed.poolEnded, ids.size, 'every connection closed as poolEnded');
  t.same(
    log.find('connection evicted').map((l) => l.connId).sort(),
    [...ids].sort(),
    'an eviction logged for each of the pool\'s connections',
  );
  t.same(await serverHas([...ids]), [], 'after end() resolved, none of the pool\'s connections is left on the server');

  // Twice (and again after it finished) is safe.
  const [a, b] = await Promise.all([pool.end(), pool.end()]);
  t.equal(a, undefined);
  t.equal(b, undefined);
  t.pass('end() called again resolves');
});

t.test('end() lets a borrow already waiting for a connection finish', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const first = pool.withConnection(async (conn) => {
    started();
    await conn.query('SELECT SLEEP(0.3)');
    return conn.threadId;
  });
  await running;
  const queued = pool.withConnection((conn) => conn.threadId);
  t.equal(pool.stats().waiting, 1, 'the second borrow is waiting');
  const ended = pool.end();
  const firstId = await first;
  t.equal(await queued, firstId, 'the waiting borrow was served, on the same connection');
  await ended;
  t.equal(pool.stats().size, 0);
  t.same(await serverHas([firstId!]), []);
});

t.test('end() on a pool that never connected resolves', async (t) => {
  const pool = createPool({ connection: server.url, logger: captureLog().logger });
  await pool.end();
  await pool.end();
  t.equal(pool.stats().created, 0, 'nothing was ever opened');
  await t.rejects(pool.withConnection(() => 1), PoolClosedError);
});

// The borrow waiting at end() needs a NEW connection (the one it waited for is past maxAge
// when it comes back). Run in a child process with a hard limit: if the pool spins, it spins
// in microtasks, which starve every timer in that process, tap's own timeout included. The
// limit counts from the child's loading (not Node's start-up) and is far above the
// scenario's own second or so, and its 3 s acquireTimeout.
t.test('end(): a waiting borrow that needs a new connection settles, and end() resolves', async (t) => {
  const r = await runChild('./end-queued-borrower.ts', [server.url], { runMs: 20_000 });
  t.equal(r.timedOut, false, `the process did not hang (${r.timedOut ? `killed at the ${r.killedBy} limit` : `${r.runMs} ms after loading`}; killed 20 s after loading)`);
  t.equal(r.exitCode, 0, 'it exited cleanly');
  const lines = r.lines as Array<Record<string, unknown>>;
  t.same(lines.find((l) => 'a' in l), { a: 'a done' }, 'the in-flight call resolved');
  const b = lines.find((l) => 'b' in l);
  t.ok(b, 'the waiting borrow settled');
  // Either outcome honours the contract; hanging does not.
  if (b?.b === 'rejected') {
    t.equal(b.name, 'PoolClosedError', 'if refused, then with PoolClosedError');
    t.equal(b.bCalled, false, 'and its fn was not called');
  } else if (b) {
    t.same(b, { b: 'resolved', value: 'b done', bCalled: true }, 'if served, then with its result');
  }
  t.match(lines.find((l) => 'end' in l), { end: 'resolved', stats: { size: 0 } }, 'end() resolved with nothing left open');
  if (r.stderr) t.comment(r.stderr.slice(0, 2_000));
});
