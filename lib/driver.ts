/**
 * Everything that talks to mysql2: connect, the liveness flags, a ping bounded by a timeout,
 * closing, and reading the server's wait_timeout. The pool's policy never touches mysql2's
 * internals directly; it goes through here.
 */
import mysqlCore from 'mysql2';
import mysql from 'mysql2/promise';
import type { Connection, ConnectionOptions } from 'mysql2/promise';
import type { StackTraces } from './config.js';

/** The parts of mysql2's callback connection (`promiseConnection.connection`) used here. */
interface CoreConnection {
  threadId: number | null;
  _closing?: boolean;
  _fatalError?: unknown;
  _protocolError?: unknown;
  stream?: { destroyed?: boolean; destroy(): void; end(): void; once(event: 'close', listener: () => void): void };
  _command?: unknown;
  _commands?: { length: number };
  _notifyError?(err: Error): void;
  ping(callback: (err: Error | null) => void): void;
  end(callback: (err?: Error | null) => void): void;
  close(): void;
  on(event: 'end', listener: () => void): void;
  on(event: 'error', listener: (err: Error & { code?: string | number; fatal?: boolean }) => void): void;
}

/** A mysql2 promise connection, as lent to the user. */
export type DriverConnection = Connection;

function core(conn: DriverConnection): CoreConnection {
  return (conn as unknown as { connection: CoreConnection }).connection;
}

// mysql2's promise wrapper, exported at run time but not in its types.
const PromiseConnection = (mysql as unknown as { PromiseConnection: new (core: unknown, promise: PromiseConstructor) => DriverConnection }).PromiseConnection;

/** A connect under way. */
export interface Dialing {
  /** The connection, or mysql2's own error (ECONNREFUSED, ER_ACCESS_DENIED_ERROR, ...). */
  readonly done: Promise<DriverConnection>;
  /** Tears the attempt down now; `done` rejects with `reason` unless it already settled. */
  abort(reason: Error): void;
}

/**
 * Opens one connection, as mysql2's promise `createConnection` does, but abortable: `end()`
 * must not wait for a handshake that may take up to `connectTimeout` (10 s) to give up.
 */
export function dial(options: Readonly<ConnectionOptions>): Dialing {
  const c = mysqlCore.createConnection(options as ConnectionOptions) as unknown as CoreConnection & {
    once(event: 'connect', listener: () => void): void;
    once(event: 'error', listener: (err: Error) => void): void;
  };
  let abort!: (reason: Error) => void;
  const done = new Promise<DriverConnection>((resolve, reject) => {
    let settled = false;
    c.once('connect', () => {
      if (settled) return;
      settled = true;
      resolve(new PromiseConnection(c, Promise));
    });
    c.once('error', (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
    abort = (reason) => {
      if (settled) return;
      settled = true;
      c.on('error', () => undefined); // what the torn-down socket reports is no one's concern now
      c.stream?.destroy();
      reject(reason);
    };
  });
  return { done, abort };
}

/** The server's id for this connection (`CONNECTION_ID()`). */
export function connectionId(conn: DriverConnection): number {
  return core(conn).threadId ?? -1;
}

/**
 * Whether mysql2 already knows the connection is unusable: closed by us, failed with a fatal
 * error, or its socket gone. No round trip; blind to a close whose event is still unprocessed.
 */
export function isKnownClosed(conn: DriverConnection): boolean {
  const c = core(conn);
  return c._closing === true || c._fatalError != null || c._protocolError != null || c.stream?.destroyed === true;
}

/**
 * Calls `listener` once when the server or the network ends the connection ('end' or a
 * fatal 'error'). Also guarantees an 'error' listener, without which mysql2 would crash the
 * process on an error that arrives while no query is running.
 */
export function onConnectionLost(conn: DriverConnection, listener: (reason: 'closedByServer' | 'connectionError', err?: Error) => void): void {
  const c = core(conn);
  let told = false;
  const tell = (reason: 'closedByServer' | 'connectionError', err?: Error) => {
    if (told) return;
    told = true;
    listener(reason, err);
  };
  c.on('end', () => tell('closedByServer'));
  c.on('error', (err) => tell('connectionError', err));
}

/** The result of a bounded ping. */
export type PingOutcome = { ok: true } | { ok: false; reason: 'pingFailed' | 'pingTimeout'; error: Error };

const PING_OK: PingOutcome = Object.freeze({ ok: true });

/**
 * Pings, giving up after `timeoutMs`. Never rejects. On a timeout the socket is destroyed at
 * once: a silently dropped connection would otherwise linger (mysql2's ping has no timeout,
 * and its `destroy()` only half-closes).
 */
export function pingWithin(conn: DriverConnection, timeoutMs: number): Promise<PingOutcome> {
  const c = core(conn);
  return new Promise((resolve) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      destroySocket(conn);
      resolve({ ok: false, reason: 'pingTimeout', error: new Error(`Ping did not answer within ${timeoutMs} ms`) });
    }, timeoutMs);
    // The socket keeps the process alive while the ping is pending; this timer need not.
    timer.unref();
    try {
      c.ping((err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(err ? { ok: false, reason: 'pingFailed', error: err } : PING_OK);
      });
    } catch (err) {
      settled = true;
      clearTimeout(timer);
      resolve({ ok: false, reason: 'pingFailed', error: err as Error });
    }
  });
}

/**
 * Tears the connection down now: no COM_QUIT, no waiting for the peer. Statements still
 * queued or running on it reject with a fatal `PROTOCOL_CONNECTION_LOST` (mysql2's own
 * `close()` would leave them pending forever).
 */
export function destroySocket(conn: DriverConnection, why = 'Connection closed by the pool'): void {
  const c = core(conn);
  // Also when mysql2 is already closing (its destroy() or end() half-closes): commands still
  // waiting for an answer would otherwise never get one, since mysql2 ignores the socket's
  // close while closing.
  const pending = c._command != null || (c._commands?.length ?? 0) !== 0;
  if (c._fatalError == null && (c._closing !== true || pending)) {
    const err = Object.assign(new Error(why), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
    try {
      c._notifyError?.(err);
    } catch {
      // a listener threw: the connection is being destroyed all the same
    }
    c._fatalError ??= err;
  }
  try {
    c.close();
  } catch {
    // already closed: nothing to do
  }
  c.stream?.destroy();
}

/**
 * Closes politely when the connection is still usable: COM_QUIT is written and the socket
 * half-closed after it, so the server counts no aborted connection; the socket is destroyed
 * once the server has closed its end, or after `timeoutMs`. A dead connection is destroyed at
 * once. Never rejects.
 */
export function close(conn: DriverConnection, timeoutMs: number): Promise<void> {
  if (isKnownClosed(conn)) {
    destroySocket(conn);
    return Promise.resolve();
  }
  const c = core(conn);
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      destroySocket(conn);
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    timer.unref();
    c.stream?.once('close', finish);
    try {
      // mysql2 calls back before it writes the QUIT packet; half-close only after that write.
      c.end(() => process.nextTick(() => c.stream?.end()));
    } catch {
      finish();
    }
  });
}

/** A timer that destroys a connection's socket unless cancelled first. */
export interface Watchdog {
  /** Whether it fired (the socket was destroyed). */
  readonly fired: boolean;
  cancel(): void;
}

/**
 * Destroys the socket unless `cancel()` is called within `timeoutMs`: statements still
 * running on it then reject, so work on a silently dropped connection cannot hang (mysql2 has
 * no timeout of its own for them).
 */
export function destroyUnlessDoneWithin(conn: DriverConnection, timeoutMs: number, why: string): Watchdog {
  const watchdog = {
    fired: false,
    cancel: () => clearTimeout(timer),
  };
  const timer = setTimeout(() => {
    watchdog.fired = true;
    destroySocket(conn, why);
  }, timeoutMs);
  timer.unref();
  return watchdog;
}

// Connect errors no retry within a borrow will fix: wrong password, unknown or denied database.
const PERMANENT_CONNECT_ERRNOS: ReadonlySet<number> = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR
  1045, // ER_ACCESS_DENIED_ERROR
  1049, // ER_BAD_DB_ERROR
  1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
  1130, // ER_HOST_NOT_PRIVILEGED: no account for this client host
  1862, // ER_MUST_CHANGE_PASSWORD_LOGIN: expired password, client not in sandbox mode
  3118, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
  4151, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB; MySQL's 4151 is a bulk-load error no handshake returns)
]);

/**
 * Whether a failed connect will fail the same way until someone changes the configuration or
 * the server's grants (waiting borrows should fail now), rather than a transient refusal
 * (server down, timeout, 1040 too many connections, 1203 max_user_connections).
 */
export function isPermanentConnectError(err: unknown): boolean {
  return err !== null && typeof err === 'object' && PERMANENT_CONNECT_ERRNOS.has((err as { errno?: unknown }).errno as number);
}

/** Reads the session's `wait_timeout`, in seconds. */
export async function readWaitTimeoutSeconds(conn: DriverConnection): Promise<number> {
  const [rows] = await conn.query({ sql: 'SELECT @@SESSION.wait_timeout AS waitTimeout', rowsAsArray: false });
  const value = Number((rows as Array<{ waitTimeout: unknown }>)[0]?.waitTimeout);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`Unexpected wait_timeout from the server: ${String(value)}`);
  return value;
}

/** Server status flag of an OK packet: a transaction is open (SERVER_STATUS_IN_TRANS). */
export const SERVER_STATUS_IN_TRANS = 1;
/** Server status flag of an OK packet: autocommit is on (SERVER_STATUS_AUTOCOMMIT). */
export const SERVER_STATUS_AUTOCOMMIT = 2;

/** Server status flag of an OK packet: session state changed (`stateChanges` is filled in). */
export const SERVER_SESSION_STATE_CHANGED = 0x4000;

/** The parts of mysql2's OK packet (`ResultSetHeader`) the pool reads. */
export interface OkHeader {
  readonly serverStatus: number;
  readonly stateChanges?: { readonly schema?: unknown; readonly systemVariables?: Readonly<Record<string, unknown>> } | undefined;
}

/**
 * The OK packet that ends a statement's results, told apart by the shape mysql2 gives them,
 * never by a property name a column could also have: no `fields` means `rows` is the OK
 * packet; `fields` made of arrays and `undefined`s means several results (multiple statements,
 * `CALL`), where `undefined` marks an OK packet and the last one holds the final state; any
 * other `fields` means a result set, whose closing status mysql2 does not expose (a SELECT
 * opens no transaction unless autocommit is off, which an earlier OK packet reported).
 * Costs O(results), never O(rows).
 */
export function okHeaderOf(rows: unknown, fields: unknown): OkHeader | undefined {
  if (fields === undefined) return asHeader(rows);
  if (!Array.isArray(fields) || !Array.isArray(rows) || fields.length === 0) return undefined;
  const first = fields[0];
  if (first !== undefined && !Array.isArray(first)) return undefined; // one result set
  for (let i = Math.min(fields.length, rows.length) - 1; i >= 0; i--) {
    if (fields[i] === undefined) return asHeader(rows[i]);
  }
  return undefined;
}

function asHeader(value: unknown): OkHeader | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  return typeof (value as { serverStatus?: unknown }).serverStatus === 'number' ? (value as OkHeader) : undefined;
}

// Codes that mean the connection, not the statement, failed.
const CONNECTION_LEVEL_CODES: ReadonlySet<string | number> = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ER_CONNECTION_KILLED',
  'ER_SERVER_SHUTDOWN',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  1053, // ER_SERVER_SHUTDOWN
  1927, // ER_CONNECTION_KILLED (MariaDB)
  4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+)
]);

/**
 * Whether `err` broke the connection (it must be destroyed) rather than one statement
 * (syntax, duplicate key, lock wait: the connection is still good).
 */
export function isConnectionLevelError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const e = err as { fatal?: unknown; code?: unknown; errno?: unknown };
  return e.fatal === true || CONNECTION_LEVEL_CODES.has(e.code as string) || CONNECTION_LEVEL_CODES.has(e.errno as number);
}

/**
 * Server errors that mean "this server cannot take this statement now", not "this statement
 * is wrong": the connection reached a read-only server (a demoted primary after a failover
 * behind one DNS name, a replica), or a Galera node outside the primary component.
 */
const WRONG_NODE_ERRNOS: ReadonlySet<number> = new Set([
  1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only
  1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
  1836, // ER_READ_ONLY_MODE
  1047, // ER_UNKNOWN_COM_ERROR: Galera "WSREP has not yet prepared node for application use"
  1180, // ER_ERROR_DURING_COMMIT: Galera "Not connected to Primary Component"
]);

/**
 * The errno of a wrong-node error (see `WRONG_NODE_ERRNOS`), else undefined. Inside a
 * transaction, 1792 is the borrower's own `START TRANSACTION READ ONLY` refusing a write, not
 * the server's state: it counts only outside one.
 */
export function wrongNodeErrno(err: unknown, inTransaction: boolean): number | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const errno = (err as { errno?: unknown }).errno;
  if (typeof errno !== 'number' || !WRONG_NODE_ERRNOS.has(errno)) return undefined;
  if (errno === ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION && inTransaction) return undefined;
  // The same numbers have other meanings: 1290 for --secure-file-priv too, 1047 for an
  // unknown command, 1180 for any failed COMMIT. Only the server state counts.
  const message = String((err as { message?: unknown }).message ?? '');
  const means = WRONG_NODE_MESSAGES.get(errno);
  return means === undefined || means.test(message) ? errno : undefined;
}

const WRONG_NODE_MESSAGES: ReadonlyMap<number, RegExp> = new Map([
  [1290, /read.only/i],
  [1047, /wsrep|prepared node/i],
  [1180, /primary component|wsrep|galera/i],
]);

const ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION = 1792;

/** Told of each statement as it is sent, and of its outcome before its promise settles. */
export interface StatementObserver {
  /** Statements sent and not yet answered; `statement()` counts up, `observe` or `unsent` count down. */
  inFlight: number;
  observe(err: unknown, rows: unknown, fields: unknown, conn: DriverConnection): void;
  /** The statement counted was refused before anything was sent. */
  unsent(): void;
}

interface CoreStatements {
  config: { trace?: boolean };
  query(sql: unknown, values: unknown, cb: StatementCallback): void;
  query(sql: unknown, cb: StatementCallback): void;
  execute(sql: unknown, values: unknown, cb: StatementCallback): void;
  execute(sql: unknown, cb: StatementCallback): void;
}

type StatementCallback = (err: Error | null, rows?: unknown, fields?: unknown) => void;

/**
 * Gives a failed statement's error the stack of whoever awaits it: re-stamped in a rejection
 * handler of the promise the caller awaits, V8's async stack trace lists the awaiting
 * functions. An error with no awaiting caller (callbacks, `.then` chains never awaited) keeps
 * its own stack rather than an empty one.
 */
function stampAtAwaiter(err: unknown): never {
  if (err instanceof Error) {
    const own = err.stack;
    Error.captureStackTrace(err, stampAtAwaiter);
    // The microtask queue's own frame says nothing; the async frames below it are the point.
    const stamped = err.stack?.replace(/\n {4}at process\.processTicksAndRejections \(node:internal[^\n]*/, '');
    if (stamped?.includes('\n    at ')) err.stack = stamped;
    else if (own !== undefined) err.stack = own;
  }
  throw err;
}

/**
 * Runs `query` or `execute` on mysql2's callback API with a single promise, resolving to
 * `[rows, fields]` exactly as mysql2's promise API does. One promise layer instead of two on
 * the path of every statement. Errors point at the user's code: see `StackTraces`.
 *
 * @param stackFrom the public method the user called; with `capture`, frames above it are left out
 */
export function statement<T>(
  conn: DriverConnection,
  method: 'query' | 'execute',
  sql: unknown,
  values: unknown,
  observer: StatementObserver,
  stackFrom: (...args: never[]) => unknown,
  stackTraces: StackTraces,
): Promise<T> {
  const c = (conn as unknown as { connection: CoreStatements }).connection;
  let holder: { stack?: string } | undefined;
  if (stackTraces === 'capture') {
    holder = {};
    Error.captureStackTrace(holder, stackFrom);
  }
  return new Promise<T>((resolve, reject) => {
    let answered = false;
    const done: StatementCallback = (err, rows, fields) => {
      // mysql2 can call a command back twice: once with its error, then again when the socket
      // is destroyed from inside that first call. Only the first answer counts.
      if (answered) return;
      answered = true;
      observer.observe(err, rows, fields, conn);
      if (err) {
        if (stackTraces === 'async') {
          const rejection = stampedRejection();
          resolve(rejection.promise); // adopted first: the caller's await is then chained to it
          return rejection.reject(err); // so the stamp, a turn later, sees the caller's frames
        }
        if (holder?.stack) {
          const lines = holder.stack.split('\n');
          lines[0] = `${err.name}: ${err.message}`;
          err.stack = lines.join('\n');
        }
        reject(err);
      } else {
        resolve([rows, fields] as T);
      }
    };
    observer.inFlight++;
    try {
      if (method === 'query') {
        if (values === undefined) c.query(sql, done);
        else c.query(sql, values, done);
      } else if (values === undefined) c.execute(sql, done);
      else c.execute(sql, values, done);
    } catch (err) {
      // Refused before anything was sent (bad arguments): nothing in flight, state unchanged.
      if (answered) return;
      answered = true;
      observer.unsent();
      reject(err);
    }
  });
}

/**
 * What a failed statement's promise is resolved with: a promise that, once rejected, re-stamps
 * the error in its rejection handler. Rejected only after the statement's promise has adopted
 * it, the handler runs with the caller's await chained to it, and V8's async stack trace walks
 * up to the caller. Paid only by a failure: a statement that succeeds allocates nothing for stacks.
 */
function stampedRejection(): { promise: Promise<never>; reject(reason: unknown): void } {
  let reject!: (reason: unknown) => void;
  const promise = new Promise<never>((_, rejectSource) => (reject = rejectSource)).then(undefined, stampAtAwaiter);
  return { promise, reject };
}
