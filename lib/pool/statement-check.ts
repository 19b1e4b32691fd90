/**
 * The statement path: what a lent connection asks before each statement. A connection idle
 * past `connWaitAge` (or known dead) is pinged, and a dead one is replaced before the
 * statement is sent, unless a transaction was open on it or the borrower changed its session
 * state (a lock, a variable, `SET TRANSACTION`).
 */
import { DEFAULTS } from '../config.js';
import { isPermanentFailure, type NewConnection } from '../connector.js';
import { jitteredMaxAgeMs } from '../decisions.js';
import * as driver from '../driver.js';
import type { EvictReason, PoolEntry } from '../entry.js';
import { AcquireTimeoutError, ConnectionSetupError, PoolClosedError, SessionLostError, TransactionLostError } from '../errors.js';
import type { StatementGate } from '../lent-connection.js';
import { emitSafely, type PoolCore } from './core.js';
import { closeLogged, takeSpareCreateMs, watch } from './lifecycle.js';
import { letLoopTurn, ping, statementVerdictOf, suspectIdle } from './liveness.js';

/**
 * The gate every connection the pool lends asks. The first question is the hot path:
 * no I/O. Concurrent statements on one connection share one check.
 */
export function makeGate(core: PoolCore): StatementGate {
  return {
    needsCheck: (entry) => {
      const nowMs = Date.now();
      return statementVerdictOf(core, entry, nowMs) !== 'use' || core.loopWatch.stalled(nowMs);
    },
    freshen: (entry) => {
      entry.freshening ??= checkBeforeStatement(core, entry).finally(() => {
        entry.freshening = undefined;
      });
      return entry.freshening;
    },
    stackTraces: core.config.stackTraces,
    afterReset: async (entry) => {
      try {
        await core.connector.setUp(entry.conn);
      } catch (err) {
        entry.broken = true; // never lent again half set up
        throw err;
      }
    },
  };
}

async function checkBeforeStatement(core: PoolCore, entry: PoolEntry): Promise<void> {
  if (core.loopWatch.stalled(Date.now())) await letLoopTurn(core);
  const verdict = statementVerdictOf(core, entry, Date.now());
  if (verdict === 'use') return;
  let reason: EvictReason = entry.lostReason ?? 'closed';
  let error: Error | undefined = undefined;
  if (verdict === 'ping') {
    const outcome = await ping(core, entry, 'statement');
    if (outcome.ok) return;
    reason = outcome.reason;
    error = outcome.error;
  }
  const lostId = entry.id;
  if (core.ending) {
    entry.broken = true;
    throw new PoolClosedError();
  }
  suspectIdle(core, reason);
  if (entry.mayHaveTransaction) {
    // Never reconnect under an open transaction: its writes are gone with the connection.
    entry.broken = true;
    core.log.warn({ connId: lostId, reason }, 'connection lost with a transaction open');
    throw new TransactionLostError(lostId, error ?? new Error(`connection ${lostId} closed (${reason})`));
  }
  if (entry.sessionChangedBy !== undefined) {
    // A lock, a variable, SET TRANSACTION...: a new connection would go on without it.
    entry.broken = true;
    core.log.warn({ connId: lostId, reason, statement: entry.sessionChangedBy }, 'connection lost after its session state was changed');
    throw new SessionLostError(lostId, entry.sessionChangedBy, error ?? new Error(`connection ${lostId} closed (${reason})`));
  }
  // Nothing was sent and no transaction is open: swap in a new connection, unseen by `fn`.
  entry.evictReason = reason;
  void closeLogged(core, entry);
  let made: NewConnection;
  const askedAtMs = Date.now();
  const spareCreateMs = takeSpareCreateMs(core);
  try {
    made = await reconnectWithin(core, core.config.reconnectTimeoutMs);
  } catch (err) {
    entry.broken = true; // the slot holds a closed connection: destroyed on return
    throw err;
  }
  const conn = made.conn;
  if (core.forcedClose) {
    // end({ timeout }) expired meanwhile: the slot was closed under its user.
    entry.broken = true;
    await driver.close(conn, DEFAULTS.closeTimeout);
    throw new PoolClosedError();
  }
  entry.adopt(conn, driver.connectionId(conn), made.madeAtMs, jitteredMaxAgeMs(core.config.maxAgeMs, Math.random()));
  watch(core, entry, conn, spareCreateMs ?? made.madeAtMs - askedAtMs);
  core.log.info({ connId: entry.id, replacedConnId: lostId, reason }, 'connection replaced before a statement');
  // In the statement's async context: its caller's trace span.
  if (core.events.listenerCount('replace') !== 0) emitSafely(core, 'replace', { pool: core.config.name, connId: lostId, reason, phase: 'statement', newConnId: entry.id });
}

// Nothing was sent yet, so waiting for the server (a restart) is safe, as a borrow would.
async function reconnectWithin(core: PoolCore, timeoutMs: number): Promise<NewConnection> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await core.connector.connect(true);
    } catch (err) {
      if (err instanceof PoolClosedError) throw err;
      if (isPermanentFailure(err)) throw err instanceof ConnectionSetupError ? err : core.connector.connectError(err);
      if (Date.now() >= deadlineMs) {
        const error = new AcquireTimeoutError(timeoutMs, core.stats(), err);
        if (core.events.listenerCount('acquireTimeout') !== 0) emitSafely(core, 'acquireTimeout', { pool: core.config.name, timeoutMs, phase: 'statement' });
        throw error;
      }
    }
  }
}
