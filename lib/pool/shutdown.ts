/**
 * The shutdown path: stop lending, wait for the loans under way (at most the shortest
 * `end({ timeout })`), then close every connection the pool opened, and leave no timer behind.
 */
import * as driver from '../driver.js';
import { InvalidArgumentError, PoolClosedError } from '../errors.js';
import type { PoolCore } from './core.js';

/**
 * Starts the shutdown, or joins the one under way; see `FreshPool.end`.
 * @param timeoutMs how long to wait for borrowed connections, ms, 0 to 2147483647 or Infinity; default: no limit
 */
export function endPool(core: PoolCore, timeoutMs: number | undefined): Promise<void> {
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || (timeoutMs > 2 ** 31 - 1 && timeoutMs !== Infinity))) {
    return Promise.reject(new InvalidArgumentError('timeout', timeoutMs, 'expected a number of milliseconds from 0 to 2147483647, or Infinity'));
  }
  if (core.ending === undefined) {
    const forced = new Promise<void>((resolve) => (core.forceEnd = resolve));
    core.ending = shutdown(core, forced);
  }
  // A later end({ timeout }) shortens the wait of an earlier end() too; the first to expire wins.
  if (timeoutMs !== undefined && timeoutMs !== Infinity && !core.forcedClose && !core.ended) {
    // unref: until end() settles, the shutdown's own hold keeps the process alive.
    const timer = setTimeout(() => core.forceEnd?.(), timeoutMs).unref();
    core.endTimers.add(timer);
  }
  return core.ending;
}

async function shutdown(core: PoolCore, forced: Promise<void>): Promise<void> {
  // The pool's own timers are unref'd; this one keeps the process alive until end() settles.
  const hold = setInterval(() => undefined, 60_000);
  try {
    await closeAll(core, forced);
  } finally {
    core.ended = true;
    clearInterval(hold);
    for (const timer of core.endTimers) clearTimeout(timer);
    core.endTimers.clear();
  }
}

async function closeAll(core: PoolCore, forced: Promise<void>): Promise<void> {
  const resources = core.resources;
  core.housekeeping.stop();
  const drained = resources.drain();
  const timedOut = await Promise.race([drained.then(() => false, () => false), forced.then(() => true)]);
  if (timedOut) {
    core.forcedClose = true;
    const borrowed = resources.borrowedResources();
    core.log.warn({ borrowed: borrowed.length, waiting: resources.pending }, 'end() timed out; closing borrowed connections');
    resources.rejectWaiting(new PoolClosedError());
    for (const entry of borrowed) {
      entry.broken = true;
      driver.destroySocket(entry.conn, 'Connection closed by end(): its timeout expired');
    }
  }
  // Through the pool's own path, so each is logged and counted (generic-pool's clear()
  // would also leave them in its idle list).
  for (const entry of resources.idleResources()) {
    entry.evictReason = 'poolEnded';
    if (!resources.removeIdle(entry)) entry.evictReason = undefined;
  }
  // Connects under way finish and close what they made: nothing the pool opened outlives end().
  await core.connector.close();
  await resources.clear();
  await core.connector.closeSpare();
  // Replaced connections close on their own path; their COM_QUIT must not outlive end() either.
  while (core.closing.size !== 0) await Promise.allSettled([...core.closing]);
  core.loopWatch.stop();
  core.log.debug({ stats: core.stats() }, 'pool ended');
}
