/**
 * Making connections: paced retries, the server's wait_timeout (read once), and the one
 * connection `ready()` opens to fail fast. The pool asks it for connections and never
 * retries a connect itself.
 */
import { DEFAULTS, describeTarget, type ResolvedConfig } from './config.js';
import { connectBackoffMs, effectiveConnWaitAgeMs } from './decisions.js';
import * as driver from './driver.js';
import type { DriverConnection } from './driver.js';
import { ConnectError, ConnectionSetupError, PoolClosedError } from './errors.js';
import type { PoolLog } from './log.js';
import { hasSessionSetup, runSessionSetup } from './session-setup.js';

/** A connection just made, and when (ms since the epoch): its age and idle time count from then. */
export interface NewConnection {
  readonly conn: DriverConnection;
  readonly madeAtMs: number;
}

/**
 * Whether a failed connect will fail the same way on the next attempt: a wrong password, an
 * unknown or denied database, or a session setup the server refused (a bad statement, a
 * throwing hook). Waiting borrows should fail now, not at acquireTimeout.
 */
export function isPermanentFailure(err: unknown): boolean {
  if (err instanceof ConnectionSetupError) return !driver.isConnectionLevelError(err.cause);
  return driver.isPermanentConnectError(err);
}

/** Opens connections for one pool. */
export class Connector {
  readonly #config: ResolvedConfig;
  readonly #log: PoolLog;
  /** The idle threshold in force, ms; `undefined` until the server's wait_timeout is known. */
  connWaitAgeMs: number | undefined;
  #waitTimeoutKnown = false;
  /** The first connection's read of wait_timeout, while it is in flight. */
  #waitTimeoutRead: Promise<void> | undefined;
  #consecutiveFailures = 0;
  /** While connects fail, attempts queue here: one probe at a time, not one per waiting caller. */
  #probeQueue: Promise<unknown> = Promise.resolve();
  /** A connection `ready()` opened, handed to the next `connect()` with the time it was made. */
  #spare: NewConnection | undefined;
  /** Attempts under way; `close()` aborts them and waits until they have let go. */
  readonly #underWay = new Set<Promise<unknown>>();
  /** Handshakes under way, aborted by `close()`. */
  readonly #dialing = new Set<driver.Dialing>();
  /** Connections made and still being set up (session setup, wait_timeout read), destroyed by `close()`. */
  readonly #settingUp = new Set<DriverConnection>();
  /** Session setups under way (new or reset connections), abandoned by `close()` or their deadline. */
  readonly #setupsUnderWay = new Set<(reason: Error) => void>();
  /** Connect attempts that failed, since the pool started. */
  failures = 0;
  /** Connect attempts made, since the pool started. */
  attempts = 0;
  /** The last connect failure since the last success. */
  lastFailure: Error | undefined;

  readonly #onFailure: (err: Error, permanent: boolean) => void;
  #closed = false;
  readonly #sleeping = new Set<() => void>();

  /**
   * Stops connecting: every attempt under way (waiting for its backoff, dialing, or setting up
   * a new connection) is abandoned at once and rejects with `PoolClosedError`, closing what it
   * made. Resolves once no attempt is under way, so nothing the pool opened outlives `end()`.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#sleeping) wake();
    this.#sleeping.clear();
    for (const dialing of this.#dialing) dialing.abort(new PoolClosedError());
    for (const conn of this.#settingUp) driver.destroySocket(conn, 'Connection closed by end() while it was being set up');
    for (const abandon of this.#setupsUnderWay) abandon(new PoolClosedError());
    while (this.#underWay.size !== 0) await Promise.allSettled([...this.#underWay]);
  }

  /**
   * @param onFailure told of each failed attempt (the pool's 'error' event); `permanent` when
   *   retrying within a borrow cannot help (wrong password, unknown database, a failing setup)
   */
  constructor(config: ResolvedConfig, log: PoolLog, onFailure: (err: Error, permanent: boolean) => void) {
    this.#config = config;
    this.#log = log;
    this.#onFailure = onFailure;
    this.connWaitAgeMs = config.connWaitAgeMs;
  }

  /**
   * A new connection, with its 'error' listener in place. While the server refuses, attempts
   * are made one at a time, each after a backoff delay; the first after a success goes at once.
   *
   * @param holdProcess keep the process alive during the backoff delay: a caller awaits this
   *   attempt with no timer of its own (a statement waiting for a replacement)
   */
  connect(holdProcess = false): Promise<NewConnection> {
    const spare = this.#spare;
    if (spare !== undefined) {
      this.#spare = undefined;
      return Promise.resolve(spare);
    }
    if (this.#consecutiveFailures === 0) return this.#tracked(this.#attempt(holdProcess));
    const turn = this.#probeQueue.then(() => this.#attempt(holdProcess));
    this.#probeQueue = turn.catch(() => undefined);
    return this.#tracked(turn);
  }

  #tracked<T>(attempt: Promise<T>): Promise<T> {
    this.#underWay.add(attempt);
    const done = () => void this.#underWay.delete(attempt);
    attempt.then(done, done);
    return attempt;
  }

  /**
   * One attempt, no retry: rejects with `ConnectError` (the server's own error as `cause`)
   * when the server is unreachable or refuses the credentials. The connection is kept for the
   * pool's next `connect()`.
   */
  async probe(): Promise<void> {
    if (this.#spare !== undefined) return;
    let made: NewConnection;
    try {
      made = await this.#tracked(this.#attempt(true)); // ready() waits on it: hold the process
    } catch (err) {
      if (err instanceof PoolClosedError || err instanceof ConnectionSetupError) throw err;
      throw this.connectError(err);
    }
    if (this.#spare === undefined) this.#spare = made;
    else await driver.close(made.conn, DEFAULTS.closeTimeout); // another probe won the race
  }

  /** A `ConnectError` naming the server, with the driver's error as `cause`. */
  connectError(err: unknown): ConnectError {
    return new ConnectError(describeTarget(this.#config.connection), err);
  }

  /** Closes the connection `ready()` kept, if no borrow took it. */
  async closeSpare(): Promise<void> {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare !== undefined) await driver.close(spare.conn, DEFAULTS.closeTimeout);
  }

  /**
   * Runs the session setup (`initSql`, `onConnect`) on `conn`, bounded by `acquireTimeout`
   * (the socket is destroyed past it). Rejects with `ConnectionSetupError`; the caller closes
   * the connection.
   */
  async setUp(conn: DriverConnection): Promise<void> {
    const setup = this.#config.setup;
    if (!hasSessionSetup(setup)) return;
    const timeoutMs = this.#config.acquireTimeoutMs;
    // Raced, not only watched: an onConnect waiting on something else than this connection (a
    // token fetch, a forgotten promise) would otherwise hold a slot, and end(), for ever.
    let abandon!: (reason: Error) => void;
    const abandoned = new Promise<never>((_, reject) => (abandon = reject));
    const timer = setTimeout(() => {
      driver.destroySocket(conn, `Session setup did not finish within ${timeoutMs} ms`);
      abandon(new ConnectionSetupError(`its end (acquireTimeout, ${timeoutMs} ms)`, new Error('initSql and onConnect did not finish in time')));
    }, timeoutMs);
    timer.unref();
    this.#setupsUnderWay.add(abandon);
    try {
      await Promise.race([runSessionSetup(conn, setup), abandoned]);
    } finally {
      clearTimeout(timer);
      this.#setupsUnderWay.delete(abandon);
    }
  }

  async #attempt(holdProcess = false): Promise<NewConnection> {
    if (this.#closed) throw new PoolClosedError();
    // generic-pool retries a failed create at once, in a loop; this delay paces it.
    const delayMs = connectBackoffMs(this.#consecutiveFailures, Math.random());
    // unref: a waiting borrow's own timer keeps the process alive, an idle pool's retry does not.
    if (delayMs > 0) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#sleeping.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, delayMs);
        if (!holdProcess) timer.unref();
        this.#sleeping.add(wake);
      });
    }
    if (this.#closed) throw new PoolClosedError();
    const seenFailures = this.#consecutiveFailures;
    this.attempts++;
    let conn: DriverConnection;
    const dialing = driver.dial(this.#config.connection);
    this.#dialing.add(dialing);
    try {
      conn = await dialing.done;
    } catch (err) {
      if (this.#closed) throw new PoolClosedError();
      this.#noteFailure(err as Error, delayMs, seenFailures, isPermanentFailure(err));
      throw err;
    } finally {
      this.#dialing.delete(dialing);
    }
    // Until the pool watches it, an 'error' event would have no listener and crash the process.
    driver.onConnectionLost(conn, () => {});
    this.#settingUp.add(conn);
    try {
      if (this.#closed) throw new PoolClosedError();
      // Setup first: it may change the session's wait_timeout.
      await this.setUp(conn);
      await this.#learnWaitTimeout(conn);
    } catch (err) {
      await driver.close(conn, DEFAULTS.closeTimeout);
      if (this.#closed) throw new PoolClosedError();
      this.#noteFailure(err as Error, delayMs, seenFailures, isPermanentFailure(err));
      throw err;
    } finally {
      this.#settingUp.delete(conn);
    }
    if (this.#closed) {
      // end() came while this attempt was dialing: what it made must not outlive the pool.
      await driver.close(conn, DEFAULTS.closeTimeout);
      throw new PoolClosedError();
    }
    this.#consecutiveFailures = 0;
    this.lastFailure = undefined;
    return { conn, madeAtMs: Date.now() };
  }

  #noteFailure(err: Error, delayMs: number, seenFailures: number, permanent: boolean): void {
    // Attempts that overlapped (a burst made before the first failure was known) count once.
    if (seenFailures === this.#consecutiveFailures) this.#consecutiveFailures++;
    this.failures++;
    this.lastFailure = err;
    this.#log.warn({ err, failures: this.#consecutiveFailures, delayMs }, 'connect failed');
    this.#onFailure(err, permanent);
  }

  async #learnWaitTimeout(conn: DriverConnection): Promise<void> {
    if (this.#waitTimeoutKnown) return;
    if (this.#waitTimeoutRead !== undefined) {
      // Made alongside the first connection: wait for its answer rather than be lent before
      // the idle threshold is known (which would cost it a ping).
      await this.#waitTimeoutRead.catch(() => undefined);
      return;
    }
    this.#waitTimeoutRead = this.#readWaitTimeout(conn).finally(() => {
      this.#waitTimeoutRead = undefined;
    });
    await this.#waitTimeoutRead;
  }

  async #readWaitTimeout(conn: DriverConnection): Promise<void> {
    const explicitMs = this.#config.connWaitAgeMs;
    // Bounded like a ping: a connection dropped silently right after its handshake must not
    // hang every connect that waits for this answer.
    const watchdog = driver.destroyUnlessDoneWithin(conn, this.#config.pingTimeoutMs, 'wait_timeout was not read within pingTimeout');
    try {
      const waitTimeoutSeconds = await driver.readWaitTimeoutSeconds(conn).finally(() => watchdog.cancel());
      const { ms, clamped } = effectiveConnWaitAgeMs(explicitMs, waitTimeoutSeconds);
      if (clamped) {
        this.#log.warn({ connWaitAgeMs: explicitMs, waitTimeoutSeconds, clampedToMs: ms }, 'connWaitAge is not below the server wait_timeout; clamped');
      }
      this.connWaitAgeMs = ms;
      this.#waitTimeoutKnown = true;
      this.#log.debug({ waitTimeoutSeconds, connWaitAgeMs: ms }, 'server wait_timeout read');
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      // A server or proxy that will not say: keep the explicit value, else the cap.
      this.connWaitAgeMs = explicitMs ?? DEFAULTS.connWaitAgeCap;
      this.#waitTimeoutKnown = true;
      this.#log.warn({ err, connWaitAgeMs: this.connWaitAgeMs }, 'could not read wait_timeout');
    }
  }
}
