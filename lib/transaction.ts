/**
 * `withTransaction`: BEGIN, the user's function, then COMMIT, or ROLLBACK when it throws.
 * Nothing here is ever retried: a lost transaction and a COMMIT whose outcome is unknown
 * each get an error that says so.
 */
import { isConnectionLevelError } from './driver.js';
import { CommitOutcomeUnknownError, InvalidArgumentError, TransactionLostError } from './errors.js';
import type { LentConnection } from './lent-connection.js';
import type { PoolLog } from './log.js';

/** SQL isolation levels. */
export type IsolationLevel = 'READ UNCOMMITTED' | 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

/** Options of `withTransaction`. */
export interface TransactionOptions {
  /** Isolation level of this transaction only. Default: the session's (the server's default). */
  isolationLevel?: IsolationLevel;
  /** `START TRANSACTION READ ONLY`. Default false. */
  readOnly?: boolean;
}

/** The statements that open a transaction with these options. */
export interface TransactionPlan {
  readonly setIsolation: string | undefined;
  readonly start: string;
}

const LEVELS: ReadonlySet<string> = new Set(['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE']);
const KNOWN_OPTIONS: ReadonlySet<string> = new Set(['isolationLevel', 'readOnly']);

/** Validates the options; throws `InvalidArgumentError` naming the option. */
export function planTransaction(options: TransactionOptions | undefined): TransactionPlan {
  if (options === undefined) return { setIsolation: undefined, start: 'START TRANSACTION' };
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', options, 'expected an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidArgumentError(key, (options as Record<string, unknown>)[key], 'unknown transaction option');
  }
  const { isolationLevel, readOnly } = options;
  if (isolationLevel !== undefined && !LEVELS.has(isolationLevel)) {
    throw new InvalidArgumentError('isolationLevel', isolationLevel, `expected one of ${[...LEVELS].join(', ')}`);
  }
  if (readOnly !== undefined && typeof readOnly !== 'boolean') throw new InvalidArgumentError('readOnly', readOnly, 'expected a boolean');
  return {
    setIsolation: isolationLevel === undefined ? undefined : `SET TRANSACTION ISOLATION LEVEL ${isolationLevel}`,
    start: readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION',
  };
}

/**
 * Runs `fn` inside a transaction on `conn`. Resolves with `fn`'s result after COMMIT; rejects
 * with `fn`'s own error after a ROLLBACK (a failing ROLLBACK is logged, never thrown over it);
 * rejects with `CommitOutcomeUnknownError` when the connection is lost during COMMIT.
 */
export async function runTransaction<T>(
  conn: LentConnection,
  plan: TransactionPlan,
  fn: (conn: LentConnection) => T | Promise<T>,
  log: PoolLog,
): Promise<T> {
  if (plan.setIsolation !== undefined) await conn.query(plan.setIsolation);
  await conn.query(plan.start);
  let result: T;
  try {
    result = await fn(conn);
  } catch (err) {
    try {
      await conn.query('ROLLBACK');
    } catch (rollbackErr) {
      log.warn({ connId: conn.threadId, err: rollbackErr }, 'rollback failed');
    }
    throw err;
  }
  try {
    await conn.query('COMMIT');
  } catch (err) {
    // Found dead before COMMIT was sent: the server rolled back; the error already says so.
    if (err instanceof TransactionLostError) throw err;
    if (isConnectionLevelError(err)) throw new CommitOutcomeUnknownError(conn.threadId, err);
    throw err;
  }
  return result;
}

/**
 * `withTransaction` for any borrower (a pool, a cluster, a session): checks `fn` and `options`
 * before anything is borrowed (rejecting, never throwing), then runs `fn` in a transaction on
 * the connection `borrow` lends. `borrow` is told whether the transaction is read-only, so a
 * cluster can route it to a replica.
 */
export function transactionOn<T, C>(
  fn: (conn: C) => T | Promise<T>,
  options: TransactionOptions | undefined,
  log: PoolLog,
  borrow: (run: (conn: C) => Promise<T>, readOnly: boolean) => Promise<T>,
): Promise<T> {
  if (typeof fn !== 'function') return Promise.reject(new InvalidArgumentError('fn', fn, 'expected a function'));
  let plan: TransactionPlan;
  try {
    plan = planTransaction(options);
  } catch (err) {
    return Promise.reject(err);
  }
  return borrow(
    (conn) => runTransaction(conn as unknown as LentConnection, plan, fn as unknown as (c: LentConnection) => T | Promise<T>, log),
    options?.readOnly === true,
  );
}
