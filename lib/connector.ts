/**
 * Making connections: paced retries, the server's wait_timeout (read once), and the one
 * connection `ready()` opens to fail fast. The pool asks it for connections and never
 * retries a connect itself.
 */
import type { Logger } from 'pino';
import { DEFAULTS, type ResolvedConfig } from './config.js';
import { connectBackoffMs, effectiveConnWaitAgeMs } from './decisions.js';
import * as driver from './driver.js';
import type { DriverConnection } from './driver.js';
import { ConnectError, PoolClosedError } from './errors.js';

/** Opens connections for one pool. */
export class Connector {
  readonly #config: ResolvedConfig;
  readonly #log: Logger;
  /** The idle threshold in force, ms; `undefined` until the server's wait_timeout is known. */
  connWaitAgeMs: number | undefined;
  #waitTimeoutKnown = false;
  /** The first connection's read of wait_timeout, while it is in flight. */
  #waitTimeoutRead: Promise<void> | undefined;
  #consecutiveFailures = 0;
  /** While connects fail, attempts queue here: one probe at a time, not one per waiting caller. */
  #probeQueue: Promise<unknown> = Promise.resolve();
  /** A connection `ready()` opened, handed to the next `connect()`. */
  #spare: DriverConnection | undefined;
  /** Connect attempts that failed, since the pool started. */
  failures = 0;
  /** Connect attempts made, since the pool started. */
  attempts = 0;
  /** The last connect failure since the last success. */
  lastFailure: Error | undefined;

  readonly #onFailure: (err: Error) => void;
  #closed = false;
  readonly #sleeping = new Set<() => void>();

  /** Abandons attempts waiting for their backoff: they reject without dialing. */
  close(): void {
    this.#closed = true;
    for (const wake of this.#sleeping) wake();
    this.#sleeping.clear();
  }

  /** @param onFailure told of each failed attempt (the pool's 'error' event) */
  constructor(config: ResolvedConfig, log: Logger, onFailure: (err: Error) => void) {
    this.#config = config;
    this.#log = log;
    this.#onFailure = onFailure;
    this.connWaitAgeMs = config.connWaitAgeMs;
  }

  /**
   * A new connection, with its 'error' listener in place. While the server refuses, attempts
   * are made one at a time, each after a backoff delay; the first after a success goes at once.
   */
  connect(): Promise<DriverConnection> {
    const spare = this.#spare;
    if (spare !== undefined) {
      this.#spare = undefined;
      return Promise.resolve(spare);
    }
    if (this.#consecutiveFailures === 0) return this.#attempt();
    const turn = this.#probeQueue.then(() => this.#attempt());
    this.#probeQueue = turn.catch(() => undefined);
    return turn;
  }

  /**
   * One attempt, no retry: rejects with `ConnectError` (the server's own error as `cause`)
   * when the server is unreachable or refuses the credentials. The connection is kept for the
   * pool's next `connect()`.
   */
  async probe(): Promise<void> {
    if (this.#spare !== undefined) return;
    let conn: DriverConnection;
    try {
      conn = await this.#attempt();
    } catch (err) {
      const { host, port, user } = this.#config.connection;
      throw new ConnectError(`${host ?? 'localhost'}:${port ?? 3306}${user ? ` as ${user}` : ''}`, err);
    }
    if (this.#spare === undefined) this.#spare = conn;
    else await driver.close(conn, DEFAULTS.closeTimeout); // another probe won the race
  }

  /** Closes the connection `ready()` kept, if no borrow took it. */
  async closeSpare(): Promise<void> {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare !== undefined) await driver.close(spare, DEFAULTS.closeTimeout);
  }

  async #attempt(): Promise<DriverConnection> {
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
        timer.unref();
        this.#sleeping.add(wake);
      });
    }
    if (this.#closed) throw new PoolClosedError();
    const seenFailures = this.#consecutiveFailures;
    this.attempts++;
    let conn: DriverConnection;
    try {
      conn = await driver.connect(this.#config.connection);
    } catch (err) {
      this.#noteFailure(err as Error, delayMs, seenFailures);
      throw err;
    }
    // Until the pool watches it, an 'error' event would have no listener and crash the process.
    driver.onConnectionLost(conn, () => {});
    try {
      await this.#learnWaitTimeout(conn);
    } catch (err) {
      await driver.close(conn, DEFAULTS.closeTimeout);
      this.#noteFailure(err as Error, delayMs, seenFailures);
      throw err;
    }
    this.#consecutiveFailures = 0;
    this.lastFailure = undefined;
    return conn;
  }

  #noteFailure(err: Error, delayMs: number, seenFailures: number): void {
    // Attempts that overlapped (a burst made before the first failure was known) count once.
    if (seenFailures === this.#consecutiveFailures) this.#consecutiveFailures++;
    this.failures++;
    this.lastFailure = err;
    this.#log.warn(
      { err: { message: err.message, code: (err as { code?: unknown }).code }, failures: this.#consecutiveFailures, delayMs },
      'connect failed',
    );
    this.#onFailure(err);
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
    try {
      const waitTimeoutSeconds = await driver.readWaitTimeoutSeconds(conn);
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
      this.#log.warn({ err: { message: (err as Error).message }, connWaitAgeMs: this.connWaitAgeMs }, 'could not read wait_timeout');
    }
  }
}
