// A stall followed by a timer that comes due during it (defect 11). The loop watch's own
// interval tick is also due after the stall, runs first in the same timers phase (it was
// scheduled to expire earlier), and used to mark the loop as having turned before any socket
// had been polled. A borrow made from the next timer callback then trusted a connection whose
// close was still unread in the kernel: PROTOCOL_CONNECTION_LOST, with loopStalls at 0.
// The tick must count as a turn only once a poll phase has passed.
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { DEFAULTS } from '../lib/config.js';
import { createPool } from '../lib/index.js';
import { LoopWatch } from '../lib/loop-watch.js';
import { captureLog } from './helpers/log.js';
import { busyWait, sleep, startServer } from './helpers/mariadb.js';
import { within } from './helpers/settle.js';
import { ID_SQL, type IdRow } from './helpers/sql.js';

const server = await startServer(t);

// The stall: long against the loop watch's threshold (DEFAULTS.loopStallMs, 50 ms) and against
// the timer's delay, so both the watch's tick and the timer are overdue when it ends.
const STALL_MS = 300;
const TIMER_MS = 50;
// Timing-dependent (which callbacks are due together after the stall): repeated.
const RUNS = 3;

/**
 * Schedules `borrow` TIMER_MS from now, then kills connection `id` and stalls the loop.
 * Resolves, once the timer has run, with the borrow's own promise (wrapped, so awaiting this
 * does not wait for the borrow).
 */
function borrowFromTimerDueDuringStall<T>(id: number, borrow: () => Promise<T>): Promise<{ result: Promise<T> }> {
  const fromTimer = new Promise<{ result: Promise<T> }>((resolve) => {
    setTimeout(() => {
      const result = borrow();
      result.catch(() => {}); // judged by the caller; never an unhandled rejection meanwhile
      resolve({ result });
    }, TIMER_MS);
  });
  server.killSync([id]); // blocks: the server's FIN arrives while nothing reads it
  busyWait(STALL_MS);
  return fromTimer;
}

t.test('LoopWatch: a timer that came due during a stall sees stalled()', async (t) => {
  const watch = new LoopWatch(DEFAULTS.loopTickMs, DEFAULTS.loopStallMs);
  watch.start();
  t.teardown(() => watch.stop());
  await sleep(DEFAULTS.loopTickMs * 4); // the watch has ticked: a settled, idle loop

  // Control: without a stall, a timer callback sees no stall (the check can say false).
  const calm = await new Promise<boolean>((resolve) => setTimeout(() => resolve(watch.stalled(Date.now())), TIMER_MS));
  t.equal(calm, false, 'no stall: a timer sees the loop turning');

  for (let run = 1; run <= RUNS; run++) {
    // Stall from the check phase, as the pool's borrowers stall from I/O callbacks: the next
    // phase that runs is the timers phase, before any poll. (A stall inside the timers phase
    // is different: a timer that came due during it runs in the next iteration, after a poll
    // has delivered the closes, so stalled() may rightly be false by then.)
    await new Promise<void>((resolve) => setImmediate(resolve));
    // Scheduled after the watch's interval, with a longer delay: its tick expires first and
    // so runs first in the timers phase that follows the stall.
    const seen = new Promise<boolean>((resolve) => setTimeout(() => resolve(watch.stalled(Date.now())), TIMER_MS));
    busyWait(STALL_MS);
    t.equal(await seen, true, `run ${run}: the timer due during the stall still sees the loop as stalled`);
    await sleep(DEFAULTS.loopTickMs * 4);
    t.equal(watch.stalled(Date.now()), false, `run ${run}: and the stall is forgotten once the loop has turned`);
  }
});

t.test('fault is real: a mysql2 pool lends, from a timer due during the stall, a connection killed in it', async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  const [rows] = await plain.query<Array<RowDataPacket & { id: number }>>(ID_SQL);
  const { result } = await borrowFromTimerDueDuringStall(rows[0]!.id, () => plain.query('SELECT 1'));
  await t.rejects(result, { code: /PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE/ });
});

t.test('default connWaitAge: a borrow from a timer due during the stall does not get the killed connection', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  await pool.query('SELECT 1'); // learns wait_timeout: connWaitAge is derived (30 s), no ping due
  for (let run = 1; run <= RUNS; run++) {
    await sleep(DEFAULTS.loopTickMs * 4); // no stall left over from the previous run
    // Used moments ago: idle far below connWaitAge, so only the stall can make the pool look.
    const [used] = await pool.query<IdRow[]>(ID_SQL);
    const id = used[0]!.id;
    const stallsBefore = pool.stats().loopStalls;
    const pingsBefore = pool.stats().pings;
    const { result } = await borrowFromTimerDueDuringStall(id, () => pool.query<IdRow[]>(ID_SQL));
    const outcome = await within(result, 5_000); // hang detector only
    t.equal(outcome.status, 'fulfilled', `run ${run}: the borrow from the timer succeeded`);
    if (outcome.status === 'rejected') t.comment(`run ${run}: ${String((outcome.reason as { code?: unknown }).code)}: ${String((outcome.reason as Error).message)}`);
    if (outcome.status !== 'fulfilled') continue;
    t.not(outcome.value[0][0]?.id, id, `run ${run}: on a new connection, not the killed one`);
    t.ok(pool.stats().loopStalls > stallsBefore, `run ${run}: the stall was noticed (loopStalls)`);
    t.equal(pool.stats().pings, pingsBefore, `run ${run}: found without a round trip`);
    t.ok(
      log.find('connection evicted').some((l) => l.connId === id),
      `run ${run}: the killed connection was evicted`,
    );
  }
});
