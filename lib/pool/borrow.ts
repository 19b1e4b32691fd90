/**
 * The borrow path: an idle connection used moments ago is lent after one synchronous
 * decision; anything else waits in generic-pool's queue and is checked before it is lent,
 * all within one `acquireTimeout`.
 */
import type { BorrowVerdict } from '../decisions.js';
import type { PoolEntry } from '../entry.js';
import { AcquireTimeoutError, ConnectionSetupError, PoolClosedError } from '../errors.js';
import type { AcquirePath } from '../events.js';
import { emitSafely, type PoolCore } from './core.js';
import { borrowVerdictOf, letLoopTurn, ping, suspectIdle } from './liveness.js';

// Internal: the same name generic-pool gives its own acquire timeout; never reaches users.
class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * Borrows a checked connection. Rejects with `AcquireTimeoutError` after `acquireTimeout` ms,
 * `PoolClosedError` once the pool is ending.
 *
 * Validation runs here rather than in generic-pool's testOnBorrow: the hot path (an idle
 * connection used moments ago, nobody waiting ahead) costs one synchronous decision and
 * returns the entry itself: no promise, no timer, no await. A check can never leave a
 * connection stuck in generic-pool's test set.
 */
export function acquire(core: PoolCore): PoolEntry | Promise<PoolEntry> {
  if (core.ending) return Promise.reject(new PoolClosedError());
  const startedMs = Date.now();
  const idle = core.resources.takeIdle();
  if (idle !== undefined && idle.pinging === undefined && borrowVerdictOf(core, idle, startedMs) === 'use' && !core.loopWatch.stalled(startedMs)) {
    noteAcquire(core, idle, 0, 'idle');
    return idle;
  }
  return acquireChecked(core, startedMs, idle);
}

// The slow path: wait in generic-pool's queue, check what it lends, retry within acquireTimeout.
async function acquireChecked(core: PoolCore, startedMs: number, taken: PoolEntry | undefined): Promise<PoolEntry> {
  const epoch = core.waitEpoch;
  let next: PoolEntry | Promise<PoolEntry> = taken ?? core.resources.acquireWaiting(core.config.acquireTimeoutMs);
  let via: AcquirePath = taken === undefined ? 'waited' : 'checked';
  for (;;) {
    let entry: PoolEntry;
    try {
      entry = await next;
    } catch (err) {
      throw acquireFailure(core, err);
    }
    if (core.waitEpoch !== epoch) throw cancelled(core, entry);
    let nowMs = Date.now();
    const verdict = borrowVerdictOf(core, entry, nowMs);
    if (verdict !== 'use' || entry.pinging !== undefined || core.loopWatch.stalled(nowMs)) {
      const ok = await checkBeforeLending(core, entry, verdict);
      if (ok && core.waitEpoch !== epoch) throw cancelled(core, entry);
      const checkedMs = Date.now();
      core.counters.validationMsTotal += checkedMs - nowMs;
      nowMs = checkedMs;
      if (!ok) {
        if (core.events.listenerCount('replace') !== 0) {
          emitSafely(core, 'replace', { pool: core.config.name, connId: entry.id, reason: entry.evictReason ?? 'closed', phase: 'borrow', newConnId: undefined });
        }
        void core.resources.destroy(entry);
        // Another connection, within what is left of acquireTimeout.
        const remainingMs = startedMs + core.config.acquireTimeoutMs - nowMs;
        if (remainingMs <= 0) throw acquireFailure(core, new TimeoutError());
        if (core.waitEpoch !== epoch) throw core.waitCancelReason!;
        next = acquireWithin(core, remainingMs);
        via = 'waited';
        continue;
      }
    }
    noteAcquire(core, entry, nowMs - startedMs, via);
    return entry;
  }
}

// A borrow cancelled while it waited or was checked: the connection goes back unlent.
function cancelled(core: PoolCore, entry: PoolEntry): Error {
  core.resources.giveBack(entry);
  return core.waitCancelReason!;
}

/**
 * Rejects with `reason` every borrow now waiting for a connection: those in the queue at
 * once, one being checked once its check is done (its connection goes back unlent). Borrows
 * that start later are not affected. Allocates nothing per borrow: a cluster calls it when a
 * node stops being fit, so that the waits there move to another node.
 */
export function cancelWaiting(core: PoolCore, reason: Error): void {
  core.waitEpoch++;
  core.waitCancelReason = reason;
  if (core.resources.pending !== 0) core.resources.rejectWaiting(reason);
}

function noteAcquire(core: PoolCore, entry: PoolEntry, waitMs: number, via: AcquirePath): void {
  const counters = core.counters;
  counters.acquires++;
  counters.acquireWaitMsTotal += waitMs;
  if (waitMs > counters.acquireWaitMsMax) counters.acquireWaitMsMax = waitMs;
  if (core.events.listenerCount('release') !== 0) {
    core.lentAtMs.set(entry, Date.now());
    core.lentAtNoted = true;
  }
  if (core.events.listenerCount('acquire') !== 0) emitSafely(core, 'acquire', { pool: core.config.name, connId: entry.id, waitMs, via });
}

function acquireFailure(core: PoolCore, err: unknown): Error {
  if (err instanceof TimeoutError || (err as Error)?.name === 'TimeoutError') {
    const timeoutMs = core.config.acquireTimeoutMs;
    const error = new AcquireTimeoutError(timeoutMs, core.stats(), lastFailure(core));
    if (core.events.listenerCount('acquireTimeout') !== 0) emitSafely(core, 'acquireTimeout', { pool: core.config.name, timeoutMs, phase: 'borrow' });
    return error;
  }
  if (core.ending) return new PoolClosedError();
  return err as Error;
}

// The last connect or ping failure since the last successful connect.
function lastFailure(core: PoolCore): Error | undefined {
  const ping = core.lastPingFailure;
  const pingIsRecent = ping !== undefined && ping.atAttempt === core.connector.attempts;
  return core.connector.lastFailure ?? (pingIsRecent ? ping.error : undefined);
}

// generic-pool's own timeout restarts with each acquire; this one keeps the first deadline.
// A connection that arrives after it gave up goes straight back to the pool.
function acquireWithin(core: PoolCore, ms: number): Promise<PoolEntry> {
  const request = core.resources.acquire();
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      request.then((entry) => core.resources.giveBack(entry), () => undefined);
      reject(new TimeoutError());
    }, ms);
    request.then(
      (entry) => {
        if (timedOut) return;
        clearTimeout(timer);
        resolve(entry);
      },
      (err: unknown) => {
        if (timedOut) return;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

// The slow path of a borrow: after a loop stall, an age or idle verdict. Never rejects.
async function checkBeforeLending(core: PoolCore, entry: PoolEntry, verdict: BorrowVerdict): Promise<boolean> {
  if (entry.pinging !== undefined) {
    // Taken while a keep-alive ping was in flight: its outcome decides, and its timeout must
    // never destroy the socket under this borrower's statement.
    const outcome = await entry.pinging;
    if (!outcome.ok) {
      entry.evictReason = outcome.reason;
      suspectIdle(core, outcome.reason);
      return false;
    }
    verdict = borrowVerdictOf(core, entry, Date.now());
  }
  if (verdict === 'use' && core.loopWatch.stalled(Date.now())) {
    // A close that arrived during the stall is still unread: let the loop deliver it first.
    await letLoopTurn(core);
    verdict = borrowVerdictOf(core, entry, Date.now());
  }
  if (verdict === 'use') return true;
  if (verdict === 'ping') {
    const outcome = await ping(core, entry, 'borrow');
    if (outcome.ok) return true;
    entry.evictReason = outcome.reason;
  } else {
    entry.evictReason = verdict === 'closed' ? (entry.lostReason ?? 'closed') : verdict;
  }
  if (verdict !== 'maxAge') suspectIdle(core, entry.evictReason);
  return false;
}

/**
 * A connect failure no retry within a borrow can fix (wrong password, unknown database, a
 * failing session setup): the borrows waiting now fail at once instead of at acquireTimeout
 * (mysql2's and pg's pools fail the borrow whose connect failed). All of them, even one a
 * connection returned moments later could have served: the pool cannot tell which borrow
 * waits for a new connection. Attempts go on, paced, for later borrows.
 */
export function failWaitingBorrows(core: PoolCore, err: Error): void {
  if (core.resources.pending === 0) return;
  core.resources.rejectWaiting(err instanceof ConnectionSetupError ? err : core.connector.connectError(err));
}
