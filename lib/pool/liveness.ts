/**
 * Whether a connection is still alive, as the borrow, the statement check and keep-alive ask
 * it: the verdicts (no I/O), one bounded ping at a time per connection, one loop turn after a
 * stall, and the moment before which every connection is suspect.
 */
import { borrowVerdict, type BorrowVerdict, statementVerdict } from '../decisions.js';
import * as driver from '../driver.js';
import type { EvictReason, PoolEntry } from '../entry.js';
import type { PingCause } from '../events.js';
import { LoopWatch } from '../loop-watch.js';
import { emitSafely, type PoolCore } from './core.js';

/** Whether mysql2 or its events already told us the connection is dead (no I/O). */
export function isGone(entry: PoolEntry): boolean {
  return entry.lostReason !== undefined || driver.isKnownClosed(entry.conn);
}

/** What a borrow does with `entry` as of `nowMs` (ms since the epoch); no I/O. */
export function borrowVerdictOf(core: PoolCore, entry: PoolEntry, nowMs: number): BorrowVerdict {
  return borrowVerdict(entry, isGone(entry), nowMs, core.connector.connWaitAgeMs, core.suspectBeforeMs);
}

/** What a statement does with `entry` as of `nowMs` (ms since the epoch); no I/O. */
export function statementVerdictOf(core: PoolCore, entry: PoolEntry, nowMs: number): 'closed' | 'ping' | 'use' {
  return statementVerdict(entry, isGone(entry), nowMs, core.connector.connWaitAgeMs, core.suspectBeforeMs, entry.inFlight);
}

/**
 * After a restart or failover, every connection made before it is suspect: each is checked
 * at its next use, so the pool pays one detection, not one user-visible failure per connection.
 */
export function suspectIdle(core: PoolCore, reason: EvictReason): void {
  const nowMs = Date.now();
  if (nowMs - core.suspectBeforeMs > 1_000) {
    core.log.info({ reason }, 'connection found dead; connections used before now will be checked before use');
  }
  core.suspectBeforeMs = nowMs;
}

/** After a stall, one loop turn delivers the closes that arrived meanwhile; counted. */
export async function letLoopTurn(core: PoolCore): Promise<void> {
  core.counters.loopStalls++;
  await LoopWatch.turn();
}

/**
 * A ping bounded by `pingTimeout` ms; a live connection counts as just used. One at a time
 * per connection: a borrow that finds one in flight waits for it. Never rejects.
 * @param cause what it is for, in the 'ping' event (a caller joining a ping in flight emits none)
 */
export function ping(core: PoolCore, entry: PoolEntry, cause: PingCause): Promise<driver.PingOutcome> {
  entry.pinging ??= pingOnce(core, entry, cause).finally(() => {
    entry.pinging = undefined;
  });
  return entry.pinging;
}

async function pingOnce(core: PoolCore, entry: PoolEntry, cause: PingCause): Promise<driver.PingOutcome> {
  const conn = entry.conn;
  const connId = entry.id;
  const startedMs = Date.now();
  const idleMs = startedMs - entry.lastAccessAt;
  core.counters.pings++;
  const outcome = await driver.pingWithin(entry.conn, core.config.pingTimeoutMs);
  if (outcome.ok) {
    core.log.debug({ connId: entry.id, idleMs }, 'connection pinged');
    entry.lastAccessAt = Date.now();
  } else {
    core.counters.pingFailures++;
    core.lastPingFailure = { error: outcome.error, atAttempt: core.connector.attempts };
    // For the eviction's log line, unless the slot holds another connection by now.
    if (entry.conn === conn) entry.lostError ??= outcome.error;
  }
  // Emitted here, in the first caller's async context: a borrow's or a statement's trace span.
  if (core.events.listenerCount('ping') !== 0) {
    const reason = outcome.ok ? undefined : outcome.reason;
    emitSafely(core, 'ping', { pool: core.config.name, connId, ok: outcome.ok, reason, pingMs: Date.now() - startedMs, idleMs, cause });
  }
  return outcome;
}
