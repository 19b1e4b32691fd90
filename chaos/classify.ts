/**
 * What a rejection means for the pool's promise. Allowed: one of this library's typed errors
 * that a fault can legitimately cause, the driver's or server's own error for a statement
 * that was in flight when its connection died, a statement-level server error, or the
 * workload's own deliberate throw. Anything else breaks the promise (or the harness).
 */
import {
  AcquireTimeoutError,
  CommitOutcomeUnknownError,
  FreshPoolError,
  PoolClosedError,
  TransactionLostError,
} from '../lib/index.js';

/** How a rejection is judged. */
export type ErrorClass =
  /** A typed error of this library that a fault or end() can cause. */
  | 'typed'
  /** The driver's or server's error for a statement in flight when the connection died. */
  | 'inFlight'
  /** A server error about the statement itself (a lock wait); the connection is fine. */
  | 'statement'
  /** The workload threw it on purpose. */
  | 'deliberate'
  /** Not allowed: a dead connection reached user code, or a harness bug. */
  | 'violation';

/** Thrown by the workload on purpose, to see the transaction rolled back. */
export class DeliberateError extends Error {
  readonly code = 'CHAOS_DELIBERATE';
}

const TYPED_ALLOWED: ReadonlySet<string> = new Set([
  AcquireTimeoutError.code,
  PoolClosedError.code,
  TransactionLostError.code,
  CommitOutcomeUnknownError.code,
]);

// The connection died under a statement already sent (KILL, restart, reset flow).
const IN_FLIGHT: ReadonlySet<string> = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ER_CONNECTION_KILLED', // 1927, MariaDB's KILL
  'ER_SERVER_SHUTDOWN', // 1053
  'ER_CLIENT_INTERACTION_TIMEOUT', // 4031, MySQL's wait_timeout close
  'CR_SERVER_GONE_ERROR', // 2006
  'CR_SERVER_LOST', // 2013
]);

// Errors about the statement, not the connection. Lock order in the workload prevents
// deadlocks, so these are reported but not expected.
const STATEMENT: ReadonlySet<string> = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_QUERY_INTERRUPTED']);

/**
 * Whether the pool itself tore the connection down (a ping's timeout, `driver.destroySocket`)
 * while this statement was queued or running on it.
 */
export function closedByPool(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null | undefined;
  return e?.code === 'PROTOCOL_CONNECTION_LOST' && typeof e.message === 'string' && e.message.startsWith('Connection closed by the pool');
}

/** A stable label for `err`: its `code`, else its errno, else its class name. */
export function codeOf(err: unknown): string {
  const e = err as { code?: unknown; errno?: unknown; name?: unknown } | null | undefined;
  if (closedByPool(err)) return 'PROTOCOL_CONNECTION_LOST (closed by the pool)';
  if (typeof e?.code === 'string' && e.code !== '') return e.code;
  if (typeof e?.errno === 'number') return `errno ${e.errno}`;
  return typeof e?.name === 'string' ? e.name : typeof err;
}

/**
 * Judges one rejection. `dangling`: a statement left running after its call returned, which
 * the pool cannot see; the pool may close its connection under it after a failed check.
 */
export function classify(err: unknown, dangling = false): ErrorClass {
  if (err instanceof DeliberateError) return 'deliberate';
  if (err instanceof FreshPoolError) return TYPED_ALLOWED.has(err.code) ? 'typed' : 'violation';
  // No end({ timeout }) in this run: the pool closing a connection under a statement of a
  // call that still holds it is never allowed.
  if (closedByPool(err)) return dangling ? 'inFlight' : 'violation';
  const code = codeOf(err);
  if (IN_FLIGHT.has(code)) return 'inFlight';
  if (STATEMENT.has(code)) return 'statement';
  return 'violation';
}

/** Whether a write that rejected with `err` was certainly never sent to the server. */
export function certainlyNotSent(err: unknown): boolean {
  return err instanceof AcquireTimeoutError || err instanceof PoolClosedError || err instanceof TransactionLostError;
}
