/**
 * Error classes. Each has a stable `code` (match on it, not on the message) and a `name`.
 * Errors raised by the server, by mysql2 or by the user's own function are never wrapped:
 * they reach the caller exactly as thrown.
 */

/** Base class of every error this library raises itself. */
export class FreshPoolError extends Error {
  /** Stable machine-readable code, e.g. `ERR_FRESH_POOL_CONFIG`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Thrown by `createPool` when the configuration is invalid. `field` names the offending key
 * (dotted for nested keys) and `value` holds what was given (a password is never included).
 */
export class ConfigError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_CONFIG';
  /** The configuration key at fault, e.g. `maxAge` or `connection`. */
  readonly field: string;
  /** The value that was rejected (URLs with their password replaced by `***`). */
  readonly value: unknown;

  constructor(field: string, value: unknown, problem: string) {
    super(ConfigError.code, `Invalid config "${field}": ${problem} (got ${describe(value)})`);
    this.field = field;
    this.value = value;
  }
}

/** A snapshot of the pool's counters; see `FreshPool.stats()`. */
export interface PoolStats {
  /** Connections open or being opened. */
  readonly size: number;
  /** Connections idle in the pool. */
  readonly idle: number;
  /** Connections lent out. */
  readonly borrowed: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /** Configured maximum number of connections. */
  readonly max: number;
  /** Configured minimum number of connections. */
  readonly min: number;
  /** Connections created since the pool started. */
  readonly created: number;
  /** Connections destroyed since the pool started, by reason (`maxAge`, `pingFailed`, ...). */
  readonly destroyed: Readonly<Record<string, number>>;
  /** Validation pings sent. */
  readonly pings: number;
  /** Validation pings that failed or timed out. */
  readonly pingFailures: number;
  /** Connect attempts made. */
  readonly connectAttempts: number;
  /** Connect attempts that failed. */
  readonly connectFailures: number;
  /** Borrows or statements that waited one loop turn because the event loop had stalled. */
  readonly loopStalls: number;
  /** Borrows that got a connection. */
  readonly acquires: number;
  /** Total ms borrows spent waiting for a connection (validation included). */
  readonly acquireWaitMsTotal: number;
  /** Longest wait of a single borrow, ms. */
  readonly acquireWaitMsMax: number;
  /** Total ms spent checking connections before lending them (pings, loop turns). */
  readonly validationMsTotal: number;
  /** The idle threshold in force, in ms (`undefined` until the server's wait_timeout is known). */
  readonly connWaitAgeMs: number | undefined;
}

/**
 * A borrow did not get a connection within `acquireTimeout` ms. `cause` is the last connect or
 * ping failure since the last successful connect, when there was one; `stats` is the pool's
 * state at the moment of the timeout.
 */
export class AcquireTimeoutError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT';
  /** The pool's counters when the borrow gave up. */
  readonly stats: PoolStats;
  /** The timeout that expired, in ms. */
  readonly timeoutMs: number;

  constructor(timeoutMs: number, stats: PoolStats, cause: unknown) {
    const why = cause instanceof Error ? `; last failure: ${cause.message}` : '';
    super(
      AcquireTimeoutError.code,
      `No connection could be acquired within ${timeoutMs} ms ` +
        `(size ${stats.size}/${stats.max}, borrowed ${stats.borrowed}, waiting ${stats.waiting})${why}`,
      cause === undefined ? undefined : { cause },
    );
    this.stats = stats;
    this.timeoutMs = timeoutMs;
  }
}

/** The pool was ended (`pool.end()`); it lends no more connections. */
export class PoolClosedError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_CLOSED';

  constructor() {
    super(PoolClosedError.code, 'The pool is closed: end() was called, no more connections are lent');
  }
}

/**
 * `ready()` could not open a connection: the server refused it, could not be reached, or
 * rejected the credentials. `cause` is the driver's error, whose message the server wrote.
 */
export class ConnectError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_CONNECT';

  constructor(target: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(ConnectError.code, `Cannot connect to ${target}: ${why}`, { cause });
  }
}

/** A method of the pool was called with an argument it cannot use; `field` names it. */
export class InvalidArgumentError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_INVALID_ARGUMENT';
  /** The argument at fault, e.g. `fn` or `isolationLevel`. */
  readonly field: string;
  /** The value that was rejected. */
  readonly value: unknown;

  constructor(field: string, value: unknown, problem: string) {
    super(InvalidArgumentError.code, `Invalid argument "${field}": ${problem} (got ${describe(value)})`);
    this.field = field;
    this.value = value;
  }
}

/**
 * The connection died while a transaction was open on it. The server has rolled the
 * transaction back; the statement that found the loss was not sent, and nothing was retried.
 * `cause` is the driver's error.
 */
export class TransactionLostError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_TRANSACTION_LOST';

  constructor(connId: number, cause: unknown) {
    super(
      TransactionLostError.code,
      `Connection ${connId} was lost with a transaction open: the server rolled the transaction back; ` +
        'nothing was retried. Run the whole transaction again if that is safe.',
      { cause },
    );
  }
}

/**
 * The connection died after the borrower had changed its session state (a `SET`, `GET_LOCK`,
 * `LOCK TABLES`, a temporary table, `SET TRANSACTION` before `BEGIN`...): a new connection
 * would not have that state, so the pool did not swap one in. The statement that found the
 * loss was not sent; nothing was retried. `statement` is the one that changed the session (its
 * first 80 characters); `cause` is the driver's error.
 */
export class SessionLostError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_SESSION_LOST';
  /** The statement that changed the session state, first 80 characters. */
  readonly statement: string;

  constructor(connId: number, statement: string, cause: unknown) {
    super(
      SessionLostError.code,
      `Connection ${connId} was lost after this borrow changed its session state (${statement}): a new connection ` +
        'would not have that state, so none was swapped in; the statement was not sent and nothing was retried. ' +
        'Borrow again and set the session up again.',
      { cause },
    );
    this.statement = statement;
  }
}

/**
 * The connection was lost while COMMIT was in flight: the transaction may or may not have
 * been committed. It was not retried. `cause` is the driver's error.
 */
export class CommitOutcomeUnknownError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_COMMIT_UNKNOWN';

  constructor(connId: number, cause: unknown) {
    super(
      CommitOutcomeUnknownError.code,
      `Connection ${connId} was lost during COMMIT: the transaction may or may not have been committed; ` +
        'it was not retried. Check the data before running it again.',
      { cause },
    );
  }
}

/**
 * A new connection (or one just reset) failed its session setup: a statement of `initSql`
 * or the `onConnect` hook failed, or did not finish in time. The connection was closed, never
 * lent half set up. `cause` is the server's or the hook's own error.
 */
export class ConnectionSetupError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_CONNECTION_SETUP';
  /** What failed: the `initSql` statement, or `onConnect`. */
  readonly step: string;

  constructor(step: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(ConnectionSetupError.code, `Session setup of a new connection failed at ${step}: ${why}`, { cause });
    this.step = step;
  }
}

/** The connection was used after `withConnection`'s function had returned and given it back. */
export class ConnectionReleasedError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_CONNECTION_RELEASED';

  constructor() {
    super(ConnectionReleasedError.code, 'This connection was already given back to the pool; use it only inside withConnection');
  }
}

/**
 * A mysql2 method that has no meaning here: a transaction, prepared statement or session
 * change on the pool itself (borrow a connection with `getConnection()` for those), or a
 * method of the adapter's connection that this library does not forward.
 */
export class UnsupportedOperationError extends FreshPoolError {
  static readonly code = 'ERR_FRESH_POOL_UNSUPPORTED';
  /** The method called, e.g. `beginTransaction`. */
  readonly operation: string;

  constructor(operation: string, hint: string) {
    super(UnsupportedOperationError.code, `${operation}() is not supported by the mysql2 adapter: ${hint}`);
    this.operation = operation;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  return Array.isArray(value) ? 'an array' : 'an object';
}
