/**
 * Child-process scenarios for shutdown.test.ts: does the process exit by itself?
 * Prints one JSON line per step (with `at`: Date.now()), then does nothing more. From the
 * moment nothing of the pool should be left (end() resolved, or every idle connection
 * closed), it watches for ref'ed timers, the ones that keep a process alive, and reports the
 * most it saw in a `timers` line at exit: a check on the code, whatever the machine's speed.
 *
 * Usage: node --import=<ts loader> shutdown-exit.ts <mode> <mysql url | closed port>
 *   end          a pool with every timer the library has (housekeeping for idleTimeout,
 *                keepAliveInterval and maxAge, the leak watch, the loop watch), borrowed,
 *                queried, a keep-alive ping done; then end().
 *   end-timeout  end({ timeout: 100 }) while a borrow runs a 3 s statement and another waits.
 *   refused-end  a pool whose connects are refused (paced retries), a borrow timed out; end().
 *   idle-no-end  a pool with idle connections only, default idleTimeout; no end().
 *   short-idle-no-end  the same with idleTimeout 300 ms (min 0): idle connections close by themselves.
 *   mysql2-no-end      a plain mysql2 pool with idle connections; no end() (what mysql2 does).
 */
import mysql from 'mysql2/promise';
import { createPool } from '../../lib/index.js';
import { childLoaded } from './child.js';
import { captureLog } from './log.js';

childLoaded();

const [mode, target] = process.argv.slice(2) as [string, string];
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify({ ...o, at: Date.now() }) + '\n');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = captureLog();

/**
 * From now until the process exits, samples `process.getActiveResourcesInfo()`, which lists
 * ref'ed timers only (as `Timeout`), every 5 ms from an unref'ed interval (never listed, never
 * keeping the process alive), and prints the most seen at once in a `timers` line at exit.
 */
function watchRefTimers(): void {
  let most = 0;
  const seen = new Set<string>();
  const sample = () => {
    const active = process.getActiveResourcesInfo();
    most = Math.max(most, active.filter((r) => r === 'Timeout').length);
    for (const r of active) seen.add(r);
  };
  sample();
  setInterval(sample, 5).unref();
  process.on('exit', () => {
    sample();
    out({ step: 'timers', refTimers: most, resources: [...seen] });
  });
}

if (mode === 'end') {
  const pool = createPool({
    connection: target,
    min: 1,
    max: 3,
    idleTimeout: 1_000,
    keepAliveInterval: 100,
    maxAge: 60_000,
    leakWarningAfter: 5_000,
    connWaitAge: 50,
    logger: log.logger,
  });
  await pool.ready();
  await Promise.all([0, 1, 2].map((i) => pool.withConnection((c) => c.query('SELECT SLEEP(0.05), ?', [i]))));
  await pool.withTransaction((c) => c.query('SELECT 1'));
  const lease = await pool.lease();
  await lease.conn.query('SELECT 1');
  lease.release();
  await sleep(250); // housekeeping runs, keep-alive pings the idle connections
  await pool.query('SELECT 1'); // idle past connWaitAge: pinged first
  out({ step: 'worked', stats: pool.stats() });
  await pool.end();
  watchRefTimers();
  out({ step: 'ended', stats: pool.stats() });
} else if (mode === 'end-timeout') {
  // end({ timeout }) while one borrow is inside a long statement and another waits.
  const pool = createPool({ connection: target, max: 1, idleTimeout: 1_000, keepAliveInterval: 100, leakWarningAfter: 5_000, logger: log.logger });
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const holder = pool.withConnection(async (c) => {
    started();
    await c.query('SELECT SLEEP(3)');
  });
  holder.then(() => out({ step: 'holder', result: 'resolved' }), (e: Error) => out({ step: 'holder', result: e.name }));
  await running;
  const waiter = pool.withConnection(() => 'never');
  waiter.then(() => out({ step: 'waiter', result: 'resolved' }), (e: Error) => out({ step: 'waiter', result: e.name }));
  await pool.end({ timeout: 100 });
  watchRefTimers();
  out({ step: 'ended', stats: pool.stats() });
} else if (mode === 'refused-end') {
  const pool = createPool({ connection: `mysql://root@127.0.0.1:${target}/test`, acquireTimeout: 300, idleTimeout: 1_000, keepAliveInterval: 100, leakWarningAfter: 5_000, logger: log.logger });
  pool.on('error', () => undefined);
  const err = await pool.withConnection(() => 'never').catch((e: Error) => e);
  out({ step: 'borrow', result: (err as Error).name });
  await pool.end();
  watchRefTimers();
  out({ step: 'ended', stats: pool.stats() });
} else if (mode === 'idle-no-end' || mode === 'short-idle-no-end') {
  const pool = createPool({ connection: target, max: 2, idleTimeout: mode === 'idle-no-end' ? 600_000 : 300, logger: log.logger });
  let evicted = 0;
  pool.on('evict', (e) => {
    out({ step: 'evict', reason: e.reason, size: pool.stats().size });
    // Both idle connections gone: from here no timer of the pool may keep the process alive.
    if (++evicted === 2) watchRefTimers();
  });
  await Promise.all([0, 1].map(() => pool.withConnection((c) => c.query('SELECT SLEEP(0.05)'))));
  out({ step: 'idle', stats: pool.stats() });
  process.on('exit', () => out({ step: 'exit', stats: pool.stats() }));
} else if (mode === 'mysql2-no-end') {
  const pool = mysql.createPool({ uri: target, connectionLimit: 2 });
  await Promise.all([0, 1].map(() => pool.query('SELECT SLEEP(0.05)')));
  out({ step: 'idle' });
  process.on('exit', () => out({ step: 'exit' }));
} else {
  throw new Error(`unknown mode ${mode}`);
}
