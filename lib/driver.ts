/**
 * Everything that talks to mysql2: connect, the liveness flags, a ping bounded by a timeout,
 * closing, and reading the server's wait_timeout. The pool's policy never touches mysql2's
 * internals directly; it goes through here.
 */
import mysql from 'mysql2/promise';
import type { Connection, ConnectionOptions } from 'mysql2/promise';

/** The parts of mysql2's callback connection (`promiseConnection.connection`) used here. */
interface CoreConnection {
  threadId: number | null;
  _closing?: boolean;
  _fatalError?: unknown;
  _protocolError?: unknown;
  stream?: { destroyed?: boolean; destroy(): void };
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

/** Opens one connection. Rejects with mysql2's own error (ECONNREFUSED, ER_ACCESS_DENIED_ERROR, ...). */
export function connect(options: Readonly<ConnectionOptions>): Promise<DriverConnection> {
  return mysql.createConnection(options as ConnectionOptions);
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

/** Tears the connection down now: no COM_QUIT, no waiting for the peer. */
export function destroySocket(conn: DriverConnection): void {
  const c = core(conn);
  try {
    c.close();
  } catch {
    // already closed: nothing to do
  }
  c.stream?.destroy();
}

/**
 * Closes politely (COM_QUIT, so the server does not count an aborted connection) when the
 * connection is still usable, and destroys the socket if that takes longer than `timeoutMs`
 * or the connection is already dead. Never rejects.
 */
export function close(conn: DriverConnection, timeoutMs: number): Promise<void> {
  if (isKnownClosed(conn)) {
    destroySocket(conn);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      destroySocket(conn);
      resolve();
    }, timeoutMs);
    try {
      core(conn).end(() => {
        clearTimeout(timer);
        destroySocket(conn);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      destroySocket(conn);
      resolve();
    }
  });
}

/** Reads the session's `wait_timeout`, in seconds. */
export async function readWaitTimeoutSeconds(conn: DriverConnection): Promise<number> {
  const [rows] = await conn.query({ sql: 'SELECT @@SESSION.wait_timeout AS waitTimeout', rowsAsArray: false });
  const value = Number((rows as Array<{ waitTimeout: unknown }>)[0]?.waitTimeout);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`Unexpected wait_timeout from the server: ${String(value)}`);
  return value;
}
