// end({ timeout }): stops lending at once, waits for borrowed connections at most `timeout`
// ms, then closes everything; safe twice; and no timer of the pool keeps the process alive
// after it (checked in child processes that must exit by themselves).
//
// On a busy machine everything takes longer, so no assertion here bounds how fast something
// happens. Order is asserted instead (end() resolved while a holder still held on), and
// where only a clock can tell a bug (a microtask spin until acquireTimeout), the bound is a
// share of that timeout, seconds away from any scheduling noise. Waits for things that must
// happen are long: they cost time only when the test fails.
import t, { type Test } from 'tap';
import { createPool, InvalidArgumentError, PoolClosedError, type FreshPool, type PoolConnection } from '../lib/index.js';
import { runChild, type ChildResult } from './helpers/child.js';
import { closedPort } from './helpers/delay-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';

const server = await startServer(t);

async function serverId(conn: PoolConnection): Promise<number> {
  const [rows] = await conn.query<any[]>('SELECT CONNECTION_ID() AS id');
  return Number(rows[0].id);
}

/** Which of `ids` the server still has. */
async function serverHas(ids: number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await server.query<Array<{ ID: number }>>(`SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (${ids.map(() => '?').join(',')})`, ids);
  return rows.map((r) => Number(r.ID));
}

async function kill(ids: number[]): Promise<void> {
  for (const id of ids) await server.query(`KILL CONNECTION ${Number(id)}`).catch(() => undefined);
}

function createdIds(pool: FreshPool): number[] {
  const ids: number[] = [];
  pool.on('create', (e) => ids.push(e.connId));
  return ids;
}

type Outcome = { settled: 'resolved'; value: unknown; ms: number } | { settled: 'rejected'; error: Error & { code?: string }; ms: number };

function outcome(promise: Promise<unknown>, since: number): Promise<Outcome> {
  return promise.then(
    (value) => ({ settled: 'resolved' as const, value, ms: Date.now() - since }),
    (error: Error) => ({ settled: 'rejected' as const, error, ms: Date.now() - since }),
  );
}

const pendingAfter = (ms: number) => sleep(ms).then(() => ({ settled: 'pending' as const }));

/** How long to wait for something that must happen before calling it missing. */
const MUST_HAPPEN_MS = 15_000;

t.test('end({ timeout: 200 }) with connections held past it', async (t) => {
  // Long, so that a borrow spinning until it (a regression below) is told from a prompt
  // answer by seconds, not by how busy the machine is.
  const ACQUIRE_TIMEOUT = 10_000;
  const pool = createPool({ connection: server.url, name: 'sd', max: 2, acquireTimeout: ACQUIRE_TIMEOUT, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const ids = createdIds(pool);

  // A holds its connection idle until let go (after end() resolved), then runs one more
  // statement. The fallback only keeps a broken end() from hanging the test.
  let letGo!: () => void;
  const heldUntil = new Promise<void>((resolve) => (letGo = resolve));
  let aNext: Promise<Outcome> | undefined;
  const a = pool.withConnection(async (conn) => {
    await serverId(conn);
    await Promise.race([heldUntil, sleep(MUST_HAPPEN_MS)]);
    aNext = outcome(serverId(conn), Date.now());
    return aNext;
  });
  // B is inside a 2 s statement when the timeout expires.
  let bStarted!: number;
  const b = pool.withConnection(async (conn) => {
    bStarted = Date.now();
    return outcome(conn.query('SELECT SLEEP(2)'), bStarted);
  });
  while (pool.stats().borrowed < 2 || bStarted === undefined) await sleep(5);
  // C waits for a connection (max 2, both lent).
  let cCalled = false;
  const c = outcome(pool.withConnection(() => (cCalled = true)), Date.now());
  while (pool.stats().waiting < 1) await sleep(5);

  const endStarted = Date.now();
  const ended = outcome(pool.end({ timeout: 200 }), endStarted).then((o) => ({ ...o, aStillHeld: aNext === undefined }));
  const late = await outcome(pool.withConnection(() => 'late'), Date.now());
  t.match(late, { settled: 'rejected', error: { name: 'PoolClosedError', code: 'ERR_FRESH_POOL_CLOSED' } }, 'a new borrow after end() rejects with PoolClosedError');

  const e = await ended;
  t.equal(e.settled, 'resolved', `end() resolves (after ${e.ms} ms)`);
  t.ok(e.aStillHeld, 'while a holder still held its connection: end() did not wait for it past the timeout');
  t.ok(e.ms >= 190, 'but not before its timeout');

  const cr = await c;
  t.match(cr, { settled: 'rejected', error: { name: 'PoolClosedError' } }, 'the borrow waiting at end time rejects with PoolClosedError');
  t.ok(cr.settled === 'rejected' && cr.error instanceof PoolClosedError);
  t.equal(cCalled, false, 'its fn never ran');

  // B's statement was running on a connection closed under it: it must reject, not hang. A
  // SLEEP(2) left to finish would resolve, so 'rejected' tells, however long it takes.
  const br = await Promise.race([b, pendingAfter(MUST_HAPPEN_MS)]);
  t.comment(`B (in flight at the timeout): ${JSON.stringify(br.settled === 'rejected' ? { settled: br.settled, name: br.error.name, code: br.error.code, ms: br.ms } : br)}`);
  // Regression (fixed): driver.destroySocket() calls mysql2's close() first, which sets
  // _closing; mysql2 then ignores the socket's 'close' and never fails the pending command.
  t.equal(br.settled, 'rejected', 'the statement in flight when the timeout expired rejects, instead of hanging');

  // A's connection was closed under it too: its next statement must reject at once with
  // PoolClosedError -- not open a new connection after end(), not retry until acquireTimeout.
  letGo();
  let lateTimerMs: number | undefined;
  const timerSet = Date.now();
  const timer = new Promise<void>((resolve) => setTimeout(() => ((lateTimerMs = Date.now() - timerSet - 50), resolve()), 50));
  const ar = await Promise.race([a, pendingAfter(ACQUIRE_TIMEOUT + MUST_HAPPEN_MS)]);
  await timer;
  t.comment(`A's next statement: ${JSON.stringify(ar.settled === 'rejected' ? { settled: ar.settled, name: ar.error.name, code: ar.error.code, cause: (ar.error.cause as Error | undefined)?.name, ms: ar.ms } : ar)}; a 50 ms timer set meanwhile fired ${lateTimerMs} ms late`);
  // Regression (fixed): checkBeforeStatement() replaces a closed connection (reconnectWithin)
  // without checking that the pool is ending; reconnectWithin() then retries the connector's
  // instant PoolClosedError in a microtask loop until acquireTimeout (event loop blocked).
  t.match(ar, { settled: 'rejected', error: { name: 'PoolClosedError' } }, "the holder's next statement after end() rejects with PoolClosedError");
  // The spin lasted until acquireTimeout: half of it tells the two apart on any machine.
  t.ok(ar.settled !== 'pending' && ar.ms < ACQUIRE_TIMEOUT / 2, `not after spinning until acquireTimeout (${ar.settled !== 'pending' ? ar.ms : 'never'} ms; acquireTimeout is ${ACQUIRE_TIMEOUT})`);
  t.ok(lateTimerMs !== undefined && lateTimerMs < ACQUIRE_TIMEOUT / 2, `the event loop was not blocked until acquireTimeout (a 50 ms timer fired ${lateTimerMs} ms late)`);
  // The server notices a closed client only when the thread next reads the socket: the one
  // busy in SLEEP(2) goes when its sleep ends. So wait for the server (at most MUST_HAPPEN_MS).
  let left = await serverHas(ids);
  for (const since = Date.now(); left.length > 0 && Date.now() - since < MUST_HAPPEN_MS; ) {
    await sleep(100);
    left = await serverHas(ids);
  }
  t.same(left, [], `none of the pool's connections is left on the server (created: ${ids.join(', ')})`);
  t.equal(ids.length, 2, 'no connection was opened after end()');

  t.equal(await pool.end(), undefined, 'end() again resolves');
  t.equal(await pool.end({ timeout: 200 }), undefined, 'and again with a timeout');
  if (br.settled !== 'pending') {
    t.match(pool.stats(), { size: 0, borrowed: 0 }, 'nothing open or lent once every holder is done');
  } else {
    t.comment('stats after the holders returned: not checked, B never returned');
  }
  await kill(await serverHas(ids)); // leave the server clean whatever happened
});

t.test('end() without a timeout waits for the holder', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const order: string[] = [];
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const holder = pool.withConnection(async (conn) => {
    started();
    await sleep(300);
    order.push('holder: statement after end() called');
    const id = await serverId(conn);
    order.push('holder: done');
    return id;
  });
  await running;
  const ended = pool.end().then(() => order.push('end() resolved'));
  order.push('end() called');
  await t.rejects(pool.withConnection(() => 1), PoolClosedError, 'new borrows rejected meanwhile');
  const id = await holder;
  await ended;
  t.same(order, ['end() called', 'holder: statement after end() called', 'holder: done', 'end() resolved'], 'end() resolved only after the holder was done; its statements ran');
  t.same(await serverHas([id]), [], 'its connection closed afterwards');
  t.match(pool.stats(), { size: 0, borrowed: 0, destroyed: { poolEnded: 1 } });
});

t.test('end() with an invalid timeout: InvalidArgumentError, and the pool keeps working', async (t) => {
  const pool = createPool({ connection: server.url, logger: captureLog().logger });
  t.teardown(() => pool.end());
  for (const timeout of [-1, 'x', Number.NaN, null, '100']) {
    await t.rejects(pool.end({ timeout: timeout as number }), InvalidArgumentError, `timeout ${String(timeout)} (${typeof timeout})`);
    await t.rejects(pool.end({ timeout: timeout as number }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'timeout' });
  }
  t.equal(await pool.withConnection(() => 'still open'), 'still open', 'a rejected end() did not end the pool');
  await pool.end({ timeout: 0 });
  await t.rejects(pool.withConnection(() => 1), PoolClosedError, 'timeout 0 is valid');
});

// Node runs a timer longer than 2^31-1 ms after 1 ms (TimeoutOverflowWarning). A timeout of
// Infinity must mean "no limit" (or be refused), never "close borrowed connections at once".
t.test('end({ timeout: Infinity }) does not close a borrowed connection after 1 ms', async (t) => {
  for (const timeout of [Number.POSITIVE_INFINITY, 2 ** 31]) {
    const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 1_000, logger: captureLog().logger });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const holder = outcome(pool.withConnection(async (conn) => {
      await serverId(conn);
      await sleep(300);
      return serverId(conn);
    }), Date.now());
    while (pool.stats().borrowed === 0) await sleep(5);
    const ended = await outcome(pool.end({ timeout }), Date.now());
    const h = await Promise.race([holder, pendingAfter(MUST_HAPPEN_MS)]);
    process.off('warning', onWarning);
    t.comment(`timeout ${timeout}: end() ${ended.settled} after ${'ms' in ended ? ended.ms : '?'} ms; holder ${h.settled}${h.settled === 'rejected' ? ` (${h.error.name}: ${h.error.message.slice(0, 120)})` : ''}; warnings: ${warnings.join(' | ') || 'none'}`);
    if (ended.settled === 'rejected') {
      t.match(ended.error, { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT' }, `timeout ${timeout} refused`);
      await pool.end();
    } else {
      // Regression (fixed): end() passes the value straight to setTimeout.
      t.ok(ended.ms >= 250, `timeout ${timeout}: end() waited for the holder (resolved after ${ended.ms} ms)`);
    }
    t.equal(h.settled, 'resolved', `timeout ${timeout}: the holder's statements ran`);
  }
});

// ---- Does the process exit by itself? (child processes, each with a hard kill limit) ----
// The limits count from the moment the child has loaded (starting Node and compiling the
// TypeScript is no part of them, it takes seconds on a busy machine). Whether anything keeps
// the process alive is checked as the child sees it: no ref'ed timer from the moment nothing
// of the pool should be left, and an exit by itself; not by how soon a busy machine lets it go.

/** ms a child may run once loaded: far above every scenario's own work (about 1 s). */
const RUN_MS = 30_000;

function lastLine(r: ChildResult, step: string): Record<string, any> | undefined {
  return (r.lines as Array<Record<string, any>>).find((l) => l?.step === step);
}

function why(r: ChildResult): string {
  const loading = r.runMs === undefined ? 'never loaded' : `loading took ${r.elapsedMs - r.runMs} ms`;
  return r.timedOut ? `killed at the ${r.killedBy} limit; ${loading}` : `exited with code ${r.exitCode}, ${r.runMs} ms after loading; ${loading}`;
}

/**
 * The child exited by itself, and no ref'ed timer was seen from the moment nothing of the
 * pool should be left (`watched`: after end(), or once the idle connections closed) to exit.
 */
function exitedCleanly(t: Test, r: ChildResult, name: string, watched: 'after end()' | 'after the idle connections closed'): void {
  t.equal(r.timedOut, false, `${name}: exited by itself (${why(r)})`);
  t.equal(r.exitCode, 0, `${name}: exit code 0`);
  const timers = lastLine(r, 'timers');
  t.match(timers, { refTimers: 0 }, `${name}: no ref'ed timer ${watched} (active resources seen then: ${JSON.stringify(timers?.resources)})`);
  const since = lastLine(r, watched === 'after end()' ? 'ended' : 'idle');
  if (timers && since) t.comment(`${name}: exited ${timers.at - since.at} ms after ${since.step} (child's clock)`);
  if (r.stderr) t.comment(`${name} stderr: ${r.stderr.slice(0, 2_000)}`);
}

t.test('the process exits by itself after end()', async (t) => {
  const port = await closedPort();
  const [full, refused, timed] = await Promise.all([
    runChild('./shutdown-exit.ts', ['end', server.url], { runMs: RUN_MS }),
    runChild('./shutdown-exit.ts', ['refused-end', String(port)], { runMs: RUN_MS }),
    runChild('./shutdown-exit.ts', ['end-timeout', server.url], { runMs: RUN_MS }),
  ]);

  exitedCleanly(t, full, 'pool with every timer', 'after end()');
  const worked = lastLine(full, 'worked');
  t.ok(worked && worked.stats.pings >= 1 && worked.stats.created >= 1, 'it did borrow, query and ping');
  t.match(lastLine(full, 'ended')?.stats, { size: 0, borrowed: 0 }, 'end() resolved with nothing open');

  exitedCleanly(t, refused, 'pool whose connects were refused', 'after end()');
  t.match(lastLine(refused, 'borrow'), { result: 'AcquireTimeoutError' });
  t.ok(lastLine(refused, 'ended'), 'end() resolved');

  exitedCleanly(t, timed, 'end({ timeout: 100 }) with a 3 s statement running', 'after end()');
  t.match(lastLine(timed, 'waiter'), { result: 'PoolClosedError' }, 'the waiting borrow got PoolClosedError');
  const tEnded = lastLine(timed, 'ended');
  t.ok(tEnded, 'end() resolved');
  const holder = lastLine(timed, 'holder');
  t.comment(`the holder inside the 3 s statement: ${JSON.stringify(holder ?? 'never settled before the process exited')}`);
  // A socket left open would keep the process alive only until the SLEEP(3) ended, well within
  // RUN_MS: the holder's outcome tells it (resolved = the statement ran to its end).
  t.not(holder?.result, 'resolved', 'the statement in flight was cut off by end({ timeout: 100 }), not waited for');
});

// Without end(), idle connections are open sockets, and open sockets keep a Node process
// alive -- with mysql2's own pool too. Recorded, not asserted: it is not the library's promise
// either way. Only the idleTimeout case is asserted: once idle connections are closed, no
// timer of the pool keeps the process alive.
t.test('without end(): a pool with idle connections only', async (t) => {
  const RECORD_MS = 3_000; // how long a child that stays alive is watched once idle
  const wentIdle = (line: unknown) => (line as { step?: unknown } | null)?.step === 'idle';
  const recorded = { runMs: RUN_MS, stopAfter: { when: wentIdle, ms: RECORD_MS } };
  const [idle, shortIdle, plain] = await Promise.all([
    runChild('./shutdown-exit.ts', ['idle-no-end', server.url], recorded),
    runChild('./shutdown-exit.ts', ['short-idle-no-end', server.url], { runMs: RUN_MS }),
    runChild('./shutdown-exit.ts', ['mysql2-no-end', server.url], recorded),
  ]);
  const describe = (r: ChildResult) =>
    r.killedBy === 'stopAfter' ? `still running ${RECORD_MS} ms after going idle (killed)` : why(r);
  t.comment(`mysql-fresh-pool, default idleTimeout, no end(): ${describe(idle)}`);
  t.comment(`mysql-fresh-pool, idleTimeout 300 ms, no end(): ${describe(shortIdle)}`);
  t.comment(`plain mysql2 pool, no end(): ${describe(plain)}`);
  for (const [name, r] of [['default idleTimeout', idle], ['idleTimeout 300', shortIdle], ['mysql2', plain]] as const) {
    t.ok(r.killedBy === 'stopAfter' || r.exitCode === 0, `${name}: no crash (${describe(r)})`);
    t.ok(lastLine(r, 'idle'), `${name}: the scenario ran`);
    if (r.stderr) t.comment(`${name} stderr: ${r.stderr.slice(0, 1_000)}`);
  }
  exitedCleanly(t, shortIdle, 'idleTimeout 300 ms: the idle connections close and the process', 'after the idle connections closed');
  t.match(lastLine(shortIdle, 'exit')?.stats, { size: 0, destroyed: { idleTimeout: 2 } }, 'closed by idleTimeout');
});
