/**
 * The return path: a loan ends, and the connection goes back to the pool only once nothing
 * of the borrower's is left on it (a statement still running, an open transaction, a changed
 * user or database); otherwise it is cleaned up or destroyed.
 */
import * as driver from '../driver.js';
import type { PoolEntry } from '../entry.js';
import { endLeakWatch, type LeakWatch } from '../leak-watch.js';
import type { LentConnection } from '../lent-connection.js';
import { emitSafely, type PoolCore } from './core.js';
import { isGone, suspectIdle } from './liveness.js';

/** Ends a loan: the lent connection refuses further use, and the slot goes back (see `giveBack`). */
export function endLoan(core: PoolCore, entry: PoolEntry, lent: LentConnection, leak: LeakWatch | undefined): void {
  lent.revoke();
  entry.sessionChangedBy = undefined; // the next loan's statements may be swapped again
  if (leak !== undefined) endLeakWatch(core.log, leak, entry.id);
  // Noted at the borrow only while someone listened to 'release'; cleared here, so a later
  // loan never reads this one's start.
  let lentAtMs = 0;
  if (core.lentAtNoted) {
    lentAtMs = core.lentAtMs.get(entry) ?? 0;
    if (lentAtMs !== 0) core.lentAtMs.set(entry, 0);
  }
  if (core.events.listenerCount('release') !== 0) {
    emitSafely(core, 'release', { pool: core.config.name, connId: entry.id, useMs: lentAtMs === 0 ? undefined : Date.now() - lentAtMs });
  }
  giveBack(core, entry);
}

function giveBack(core: PoolCore, entry: PoolEntry): void {
  if (entry.busy) {
    // A statement left running when the loan ended: the next borrower must not inherit it,
    // nor the transaction it may open. The return waits for its answer, as long as a borrow
    // would wait (on a silently dropped connection it would never come).
    const timeoutMs = core.config.acquireTimeoutMs;
    const watchdog = driver.destroyUnlessDoneWithin(entry.conn, timeoutMs, `A statement left running by its borrower did not finish within ${timeoutMs} ms`);
    entry.onSettled = () => {
      watchdog.cancel();
      if (!watchdog.fired) return giveBack(core, entry);
      entry.evictReason = 'cleanupTimeout';
      void core.resources.destroy(entry);
    };
    return;
  }
  entry.lastAccessAt = Date.now();
  entry.lastUsedAt = entry.lastAccessAt;
  if (entry.broken || isGone(entry)) {
    entry.evictReason = entry.lostReason ?? (entry.broken ? 'fatalError' : 'closed');
    suspectIdle(core, entry.evictReason);
    void core.resources.destroy(entry);
  } else if (entry.wrongNode !== undefined) {
    // A read-only or not-ready server: the next connection goes wherever the address leads now.
    entry.evictReason = 'wrongNode';
    void core.resources.destroy(entry);
  } else if (entry.identityChanged) {
    // changeUser() or USE: the next borrower gets the configured user and database, always.
    entry.evictReason = 'identityChanged';
    void core.resources.destroy(entry);
  } else if (core.config.resetOnReturn || entry.mayHaveTransaction) {
    void cleanThenRelease(core, entry);
  } else {
    core.resources.giveBack(entry);
  }
}

// Only reached when the OK packets said a transaction may be open (or resetOnReturn): the
// next borrower must never inherit someone else's uncommitted writes.
async function cleanThenRelease(core: PoolCore, entry: PoolEntry): Promise<void> {
  const leftOpen = entry.inTransaction;
  const conn = entry.conn;
  // Bounded like a ping: on a silently dropped connection the slot would otherwise stay
  // borrowed with no holder, and end() would wait for TCP to give up.
  const timeoutMs = core.config.pingTimeoutMs;
  const watchdog = driver.destroyUnlessDoneWithin(conn, timeoutMs, `Clean-up on return did not finish within ${timeoutMs} ms`);
  try {
    if (core.config.resetOnReturn) {
      await conn.reset();
      watchdog.cancel(); // the setup has its own bound
      await core.connector.setUp(conn);
    } else {
      await conn.query('ROLLBACK');
      // Untracked statements may have turned autocommit off without our seeing it.
      if (entry.autocommitOff || entry.untracked) await conn.query('SET autocommit = 1');
    }
  } catch (err) {
    core.log.warn({ connId: entry.id, err }, 'clean-up on return failed');
    entry.evictReason = watchdog.fired ? 'cleanupTimeout' : 'rollbackFailed';
    void core.resources.destroy(entry);
    return;
  } finally {
    watchdog.cancel();
  }
  if (leftOpen) core.log.warn({ connId: entry.id }, 'connection returned with a transaction open; rolled back');
  entry.inTransaction = false;
  entry.autocommitOff = false;
  entry.transactionUnknown = false;
  entry.untracked = false;
  entry.lastAccessAt = Date.now();
  entry.lastUsedAt = entry.lastAccessAt;
  core.resources.giveBack(entry);
}
