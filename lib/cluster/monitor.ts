/**
 * Watches one node over a connection of its own, apart from the node's pool: a check every
 * `intervalMs`, each bounded by `timeoutMs` (a frozen node answers nothing, not even a
 * refusal), backing off while the node is down so that a dead node costs no connect storm.
 * `checkNow()` runs one at once (a statement met a wrong-node error).
 */
import type { ConnectionOptions } from 'mysql2/promise';
import * as driver from '../driver.js';
import { probe, unreachable } from './probe.js';
import type { NodeObservation } from './topology.js';

export interface MonitorTimings {
  /** ms between checks of a node that answers. */
  readonly intervalMs: number;
  /** ms. The longest wait between checks of a node that does not answer (doubling from `intervalMs`). */
  readonly backoffMaxMs: number;
  /** ms a connect plus check may take before the node counts as down. */
  readonly timeoutMs: number;
}

class CheckTimeout extends Error {
  override name = 'CheckTimeout';
}

export class NodeMonitor {
  readonly #options: Readonly<ConnectionOptions>;
  readonly #timings: MonitorTimings;
  readonly #report: (observation: NodeObservation, checkSeq: number) => void;
  #conn: driver.DriverConnection | undefined;
  #dialing: driver.Dialing | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #delayMs: number;
  #last: NodeObservation | undefined;
  #started = 0;

  /** `report` is told the outcome of every check, in order, with the check's number (see `checksStarted`). */
  constructor(options: Readonly<ConnectionOptions>, timings: MonitorTimings, report: (observation: NodeObservation, checkSeq: number) => void) {
    this.#options = options;
    this.#timings = timings;
    this.#report = report;
    this.#delayMs = timings.intervalMs;
  }

  /** Checks started so far: a check numbered above this one started after now. */
  get checksStarted(): number {
    return this.#started;
  }

  /** The last observation, if any. */
  get last(): NodeObservation | undefined {
    return this.#last;
  }

  /** Starts checking; the first check runs now. Resolves after that first check. */
  start(): Promise<void> {
    return this.checkNow();
  }

  /** Runs a check now, or right after the one running; resolves when it is done. */
  checkNow(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    clearTimeout(this.#timer);
    this.#running = this.#check().finally(() => {
      this.#running = undefined;
      if (this.#stopped) return;
      if (this.#again) {
        this.#again = false;
        void this.checkNow();
        return;
      }
      this.#timer = setTimeout(() => void this.checkNow(), this.#delayMs);
      this.#timer.unref();
    });
    return this.#running;
  }

  async #check(): Promise<void> {
    const seq = ++this.#started;
    let observation: NodeObservation;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CheckTimeout(`no answer within ${this.#timings.timeoutMs} ms`)), this.#timings.timeoutMs);
    });
    try {
      observation = syncedStreak(await Promise.race([this.#observe(), deadline]), this.#last);
      this.#delayMs = this.#timings.intervalMs;
    } catch (err) {
      this.#drop(err as Error);
      // Keep what was last known of its kind (Galera or not); only reachability changed.
      observation = this.#last === undefined ? unreachable(err as Error) : { ...this.#last, reachable: false, error: err as Error, at: Date.now(), syncedSince: undefined };
      this.#delayMs = Math.min(this.#delayMs * 2, this.#timings.backoffMaxMs);
    } finally {
      clearTimeout(timer);
    }
    if (this.#stopped) return;
    this.#last = observation;
    this.#report(observation, seq);
  }

  async #observe(): Promise<NodeObservation> {
    if (this.#conn === undefined || driver.isKnownClosed(this.#conn)) {
      this.#conn = undefined;
      this.#dialing = driver.dial(withConnectTimeout(this.#options, this.#timings.timeoutMs));
      const conn = await this.#dialing.done;
      this.#dialing = undefined;
      if (this.#stopped) {
        driver.destroySocket(conn);
        throw new CheckTimeout('monitor stopped');
      }
      conn.on('error', () => undefined); // a dead monitor connection is found by the next check
      this.#conn = conn;
    }
    return probe(this.#conn);
  }

  // A check that failed or hung: its connection is not trusted again.
  #drop(err: Error): void {
    this.#dialing?.abort(err);
    this.#dialing = undefined;
    if (this.#conn !== undefined) driver.destroySocket(this.#conn);
    this.#conn = undefined;
  }

  /** Stops checking and closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#dialing?.abort(new CheckTimeout('monitor stopped'));
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) await driver.close(conn, 1_000);
  }
}

// A copy with its own connect timeout; the password stays non-enumerable as in the original.
function withConnectTimeout(options: Readonly<ConnectionOptions>, timeoutMs: number): ConnectionOptions {
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(options)) as ConnectionOptions;
  Object.defineProperty(copy, 'connectTimeout', { value: timeoutMs, enumerable: true });
  return copy;
}

// Galera: since when the node has answered Synced in the primary component, check after check.
function syncedStreak(observation: NodeObservation, last: NodeObservation | undefined): NodeObservation {
  const synced = (o: NodeObservation | undefined) => o?.reachable === true && o.galera !== undefined && o.galera.ready && o.galera.localState === 4 && o.galera.clusterStatus === 'Primary';
  if (!synced(observation)) return observation;
  return { ...observation, syncedSince: synced(last) ? (last!.syncedSince ?? last!.at) : observation.at };
}
