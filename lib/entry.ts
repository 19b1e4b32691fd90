/**
 * The per-connection record (HikariCP's PoolEntry): the connection and the times the pool's
 * decisions need. generic-pool hands only the resource to `validate`, so the times live here.
 *
 * An entry is one slot of the pool. Its connection can be swapped for a new one while it is
 * lent (a dead connection replaced before a statement), so generic-pool's loan stays valid.
 */
import type { ConnectionTimes } from './decisions.js';
import {
  isConnectionLevelError,
  okHeaderOf,
  SERVER_STATUS_AUTOCOMMIT,
  SERVER_STATUS_IN_TRANS,
  SERVER_SESSION_STATE_CHANGED,
  type DriverConnection,
  type OkHeader,
  type PingOutcome,
  type StatementObserver,
  wrongNodeErrno,
} from './driver.js';

/** Why a connection left the pool; logged and counted. */
export type EvictReason =
  | 'closed'
  | 'closedByServer'
  | 'connectionError'
  | 'fatalError'
  | 'idleTimeout'
  | 'maxAge'
  | 'pingFailed'
  | 'pingTimeout'
  | 'rollbackFailed'
  | 'cleanupTimeout'
  | 'identityChanged'
  | 'wrongNode'
  | 'poolEnded';

/** One pooled connection and its lifetime record. Times are ms since the epoch. */
export class PoolEntry implements ConnectionTimes, StatementObserver {
  /** The mysql2 promise connection. */
  conn: DriverConnection;
  /** The server's connection id (`CONNECTION_ID()`), for logs. */
  id: number;
  /** When the connection was made, ms since the epoch. */
  createdAt: number;
  /** When the connection was made, last finished a statement or came back, ms since the epoch. */
  lastAccessAt: number;
  /** When a borrower last used it (a keep-alive ping is not use), ms since the epoch: idleTimeout counts from here. */
  lastUsedAt: number;
  /** This connection's own age limit in ms (maxAge less its jitter); 0 means none. */
  maxAgeMs: number;
  /** Set when mysql2 reports the connection ended or failed. */
  lostReason: 'closedByServer' | 'connectionError' | undefined = undefined;
  /** Why the pool is about to destroy it; read by the destroy hook for the log. */
  evictReason: EvictReason | undefined = undefined;
  /**
   * The errno of a wrong-node error (read-only server, Galera node not ready) one of its
   * statements met: the connection is closed on return, so the next one reaches whatever
   * server the address leads to now.
   */
  wrongNode: number | undefined = undefined;
  /**
   * The GTID of the last transaction this connection committed, when the server reports it
   * (MariaDB, `last_gtid` in `session_track_system_variables`).
   */
  lastGtid: string | undefined = undefined;
  /** Told at once of a wrong-node error, with its errno (the pool emits `wrongNode`). */
  onWrongNode: ((errno: number) => void) | undefined = undefined;
  /** The first error that showed the connection dead or broken, for the eviction's log line. */
  lostError: Error | undefined = undefined;
  /** The pool has closed the current connection (it is being replaced or destroyed). */
  closing = false;
  /** A statement failed at the connection level: destroy on return. */
  broken = false;
  /** The last OK packet said a transaction is open. */
  inTransaction = false;
  /** The last OK packet said autocommit is off: any statement may have opened a transaction. */
  autocommitOff = false;
  /**
   * A statement failed: an error packet carries no status flags, and a failed `CALL` or
   * multi-statement batch may have opened a transaction before it failed. Unknown until the
   * next OK packet says; counts as "may have a transaction".
   */
  transactionUnknown = false;
  /** The user went around the tracked methods (prepared statements, the raw connection). */
  untracked = false;
  /**
   * This loan sent a statement that leaves session state (`SET`, `GET_LOCK`, `LOCK TABLES`, a
   * temporary table...; see session-state.ts): its summary. The connection is then never
   * swapped under the borrower. Cleared when the loan ends.
   */
  sessionChangedBy: string | undefined = undefined;
  /** The session's user or default database was changed (`changeUser`, `USE`): never lent again. */
  identityChanged = false;
  /** `query`/`execute` statements sent on this slot and not yet answered. */
  inFlight = 0;
  /**
   * Statements the borrower issued that wait for the check before them (a ping, a
   * replacement): not sent yet, but the borrower's all the same, so a return waits for them.
   */
  awaitingCheck = 0;
  /** Run once when no statement is in flight or awaiting its check: a return that waits for them. */
  onSettled: (() => void) | undefined = undefined;
  /** The ping in flight (validation or keep-alive); a borrow waits for its outcome. */
  pinging: Promise<PingOutcome> | undefined = undefined;
  /** A keep-alive ping is in flight. */
  keepingAlive = false;
  /** A check before a statement in progress; concurrent statements wait for the same one. */
  freshening: Promise<void> | undefined = undefined;

  constructor(conn: DriverConnection, id: number, nowMs: number, maxAgeMs: number) {
    this.conn = conn;
    this.id = id;
    this.createdAt = nowMs;
    this.lastAccessAt = nowMs;
    this.lastUsedAt = nowMs;
    this.maxAgeMs = maxAgeMs;
  }

  /** Takes a new connection into this slot, with a fresh record. */
  adopt(conn: DriverConnection, id: number, nowMs: number, maxAgeMs: number): void {
    this.conn = conn;
    this.id = id;
    this.createdAt = nowMs;
    this.lastAccessAt = nowMs;
    this.lastUsedAt = nowMs;
    this.maxAgeMs = maxAgeMs;
    this.lostReason = undefined;
    this.evictReason = undefined;
    this.lostError = undefined;
    this.wrongNode = undefined;
    this.lastGtid = undefined;
    this.closing = false;
    this.broken = false;
    this.inTransaction = false;
    this.autocommitOff = false;
    this.transactionUnknown = false;
    this.untracked = false;
    this.identityChanged = false;
  }

  /**
   * Records a statement's outcome: the time, the transaction flags of its OK packet, whether
   * its error broke the connection, and that it is no longer in flight. An outcome on a
   * connection this slot no longer holds (one replaced meanwhile) says nothing of the new one.
   */
  observe(err: unknown, rows: unknown, fields: unknown, conn: DriverConnection): void {
    if (conn === this.conn) {
      this.lastAccessAt = Date.now();
      this.lastUsedAt = this.lastAccessAt;
      if (err) {
        if (isConnectionLevelError(err)) {
          this.broken = true;
          this.lostError ??= err as Error;
        } else {
          const errno = wrongNodeErrno(err, this.inTransaction);
          if (errno !== undefined) {
            this.wrongNode ??= errno;
            this.onWrongNode?.(errno);
          }
        }
        this.transactionUnknown = true;
      } else {
        const header = okHeaderOf(rows, fields);
        if (header !== undefined) this.noteOk(header);
      }
    }
    this.inFlight--;
    this.#settleIfIdle();
  }

  /** A statement counted as sent was refused before anything went out (bad arguments). */
  unsent(): void {
    this.inFlight--;
    this.#settleIfIdle();
  }

  /** A statement waiting for its check has been sent, or failed its check. */
  checked(): void {
    this.awaitingCheck--;
    this.#settleIfIdle();
  }

  /** Whether a statement of the borrower's is in flight or waiting for its check. */
  get busy(): boolean {
    return this.inFlight !== 0 || this.awaitingCheck !== 0;
  }

  #settleIfIdle(): void {
    if (this.busy || this.onSettled === undefined) return;
    const settled = this.onSettled;
    this.onSettled = undefined;
    // Not from inside mysql2's callback: the return may close the socket, and mysql2 would
    // re-enter the command being answered.
    queueMicrotask(settled);
  }

  /** Records what an OK packet says: transaction flags, and a change of default database. */
  noteOk(header: OkHeader): void {
    const status = header.serverStatus;
    this.inTransaction = (status & SERVER_STATUS_IN_TRANS) !== 0;
    this.autocommitOff = (status & SERVER_STATUS_AUTOCOMMIT) === 0;
    this.transactionUnknown = false;
    // Session tracking reports `USE other_db`; the next borrower must get the configured one.
    if ((status & SERVER_SESSION_STATE_CHANGED) !== 0) {
      const schema = header.stateChanges?.schema;
      if (typeof schema === 'string' && schema !== '' && schema !== (this.conn.config.database ?? '')) this.identityChanged = true;
      // Reported only when `last_gtid` is tracked (a cluster with readYourWrites).
      const gtid = header.stateChanges?.systemVariables?.last_gtid;
      if (typeof gtid === 'string' && gtid !== '') this.lastGtid = gtid;
    }
  }

  /** Whether a transaction may be open, as far as the tracked statements tell. */
  get mayHaveTransaction(): boolean {
    // An unanswered statement may be the START TRANSACTION no OK packet has reported yet.
    return this.inTransaction || this.autocommitOff || this.transactionUnknown || this.untracked || this.inFlight !== 0;
  }
}
