// A connection returned while borrows wait goes straight to the oldest of them, still lent:
// no trip through the idle list. What must hold: order, counts, timeouts, and end().
import t from 'tap';
import { AcquireTimeoutError, createPool, PoolClosedError } from '../lib/index.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t);

const threadOf = async (conn: { query(sql: string): Promise<unknown> }) => {
  const [rows] = (await conn.query('SELECT CONNECTION_ID() AS id')) as [Array<{ id: number }>];
  return rows[0]!.id;
};

t.test('waiting borrows are served in arrival order on the connections returned, no new ones made', async (t) => {
  const pool = createPool({ connection: server.url, max: 2, acquireTimeout: 10_000 });
  t.teardown(() => pool.end());
  const gates: Array<() => void> = [];
  const served: number[] = [];
  const threads = new Set<number>();
  const borrow = (n: number) =>
    pool.withConnection(async (conn) => {
      served.push(n);
      threads.add(await threadOf(conn));
      await new Promise<void>((resolve) => gates.push(resolve));
    });
  const first = [borrow(0), borrow(1)];
  while (gates.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  const waiting = [2, 3, 4, 5, 6, 7].map(borrow);
  t.equal(pool.stats().waiting, 6, 'six borrows wait behind two lent connections');
  // Let them through one return at a time: each return serves the oldest waiting borrow.
  for (let opened = 0; opened < 8; opened++) {
    while (gates.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    gates.shift()!();
  }
  await Promise.all([...first, ...waiting]);
  t.same(served, [0, 1, 2, 3, 4, 5, 6, 7], 'first come, first served');
  const stats = pool.stats();
  t.equal(stats.created, 2, 'the two connections served all eight borrows');
  t.equal(threads.size, 2);
  t.match(stats, { size: 2, idle: 2, borrowed: 0, waiting: 0, acquires: 8 });
});

t.test('a borrow that timed out is never handed the connection; it goes idle and the next borrow takes it at once', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 150 });
  t.teardown(() => pool.end());
  let release!: () => void;
  let holderThread = 0;
  const holding = pool.withConnection(async (conn) => {
    holderThread = await threadOf(conn);
    await new Promise<void>((resolve) => (release = resolve));
  });
  while (holderThread === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  let timedOutRan = false;
  const timedOut = pool.withConnection(() => {
    timedOutRan = true;
  });
  await t.rejects(timedOut, AcquireTimeoutError);
  release();
  await holding;
  t.equal(timedOutRan, false, 'the timed-out borrow never ran');
  t.match(pool.stats(), { idle: 1, borrowed: 0, waiting: 0 }, 'the returned connection is idle, not lent to a borrow that gave up');
  t.equal(await pool.withConnection(threadOf), holderThread, 'the next borrow gets the same connection');
  t.equal(pool.stats().created, 1);
});

t.test('many borrows racing over one connection: each runs alone, none is lost or left waiting', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 20_000 });
  t.teardown(() => pool.end());
  let inside = 0;
  let overlapped = false;
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      pool.withConnection(async (conn) => {
        if (++inside > 1) overlapped = true;
        const [rows] = (await conn.query('SELECT ? AS n', [i])) as unknown as [Array<{ n: number }>];
        inside--;
        return rows[0]!.n;
      }),
    ),
  );
  t.same(results, Array.from({ length: 200 }, (_, i) => i));
  t.equal(overlapped, false, 'a connection is never lent to two borrowers at once');
  t.match(pool.stats(), { created: 1, idle: 1, borrowed: 0, waiting: 0, acquires: 200 });
});

t.test('end() while borrows wait: those handed a connection run, the rest reject with PoolClosedError, nothing hangs', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 20_000 });
  let release!: () => void;
  let started = false;
  const holding = pool.withConnection(async () => {
    started = true;
    await new Promise<void>((resolve) => (release = resolve));
  });
  while (!started) await new Promise((resolve) => setTimeout(resolve, 5));
  const waiters = Array.from({ length: 3 }, () => pool.withConnection(threadOf));
  const ending = pool.end();
  release();
  await holding;
  const outcomes = await Promise.allSettled(waiters);
  await ending;
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected') t.ok(outcome.reason instanceof PoolClosedError, 'rejected only with PoolClosedError');
    else t.type(outcome.value, 'number');
  }
  t.match(pool.stats(), { size: 0, borrowed: 0, waiting: 0 });
});

t.test('the lent connection destroyed while borrows wait: they get a new one, within their own deadline', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 10_000, logger: { debug() {}, info() {}, warn() {}, error() {} } });
  t.teardown(() => pool.end());
  let release!: () => void;
  let firstThread = 0;
  const holding = pool.withConnection(async (conn) => {
    firstThread = await threadOf(conn);
    await new Promise<void>((resolve) => (release = resolve));
    conn.destroy();
  });
  while (firstThread === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const waiting = [pool.withConnection(threadOf), pool.withConnection(threadOf)];
  t.equal(pool.stats().waiting, 2);
  release();
  await holding;
  const threads = await Promise.all(waiting);
  t.equal(threads[0], threads[1], 'both served, one after the other, on the replacement');
  t.not(threads[0], firstThread, 'a new connection, not the destroyed one');
  t.match(pool.stats(), { size: 1, borrowed: 0, waiting: 0, created: 2 });
});

t.test('a borrow served from the queue leaves no timer behind (none keeps the process alive for acquireTimeout)', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 60_000 });
  t.teardown(() => pool.end());
  let release!: () => void;
  let started = false;
  const holding = pool.withConnection(async () => {
    started = true;
    await new Promise<void>((resolve) => (release = resolve));
  });
  while (!started) await new Promise((resolve) => setTimeout(resolve, 5));
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const baseline = timers();
  const waiter = pool.withConnection(() => 'served');
  t.equal(pool.stats().waiting, 1);
  release();
  await holding;
  t.equal(await waiter, 'served');
  t.equal(timers(), baseline, 'the queue\'s 60 s timer went with its last waiter');
});
