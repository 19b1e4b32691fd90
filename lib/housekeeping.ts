/**
 * The pool's background upkeep, on one unref'd timer: idle connections past their age limit
 * are retired, those beyond `min` idle longer than `idleTimeout` are closed, and those idle
 * for `keepAliveInterval` are pinged. Decisions come from decisions.ts; I/O is the host's.
 */
import { housekeepingIntervalMs, idleAction } from './decisions.js';
import type { PoolEntry } from './entry.js';

/** What housekeeping needs from the pool. */
export interface HousekeepingHost {
  /** Idle entries, most recently returned first. */
  idleEntries(): PoolEntry[];
  /** Connections open or being opened. */
  size(): number;
  /** Closes an idle entry with a reason; false when it was lent meanwhile. */
  retireIdle(entry: PoolEntry, reason: 'maxAge' | 'idleTimeout'): boolean;
  /** Pings an idle entry, retiring it when dead. Never rejects. */
  keepAlive(entry: PoolEntry): Promise<void>;
}

/** Settings, ms; 0 turns one off. */
export interface HousekeepingSettings {
  readonly min: number;
  readonly maxAgeMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveIntervalMs: number;
}

export class Housekeeping {
  readonly #settings: HousekeepingSettings;
  readonly #host: HousekeepingHost;
  #timer: NodeJS.Timeout | undefined;

  constructor(settings: HousekeepingSettings, host: HousekeepingHost) {
    this.#settings = settings;
    this.#host = host;
  }

  start(): void {
    const { idleTimeoutMs, keepAliveIntervalMs, maxAgeMs } = this.#settings;
    const everyMs = housekeepingIntervalMs(idleTimeoutMs, keepAliveIntervalMs, maxAgeMs);
    if (everyMs === undefined || this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.run(Date.now()), everyMs);
    // Upkeep must never be what keeps a process alive.
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass over the idle connections, oldest-returned first, as of `nowMs`. */
  run(nowMs: number): void {
    const { min, idleTimeoutMs, keepAliveIntervalMs } = this.#settings;
    let size = this.#host.size();
    const entries = this.#host.idleEntries();
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i]!;
      if (entry.freshening !== undefined || entry.keepingAlive) continue; // a check is already running on it
      const action = idleAction(entry, nowMs, idleTimeoutMs, keepAliveIntervalMs, size > min);
      if (action === 'maxAge' || action === 'idleTimeout') {
        if (this.#host.retireIdle(entry, action) && action === 'idleTimeout') size--;
      } else if (action === 'keepAlive') {
        entry.keepingAlive = true;
        void this.#host.keepAlive(entry).finally(() => {
          entry.keepingAlive = false;
        });
      }
    }
  }
}
