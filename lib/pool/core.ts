/**
 * What the parts of one pool share. The paths (borrow, statement check, return, shutdown)
 * are functions over this record rather than methods of `FreshPool`, so each can be read
 * alone; none of them imports another path's file or the pool's public class.
 */
import type { ResolvedConfig } from '../config.js';
import type { Connector } from '../connector.js';
import type { PoolEntry } from '../entry.js';
import type { PoolStats } from '../errors.js';
import type { FreshPoolEvents } from '../events.js';
import type { Housekeeping } from '../housekeeping.js';
import type { PoolLog } from '../log.js';
import type { LoopWatch } from '../loop-watch.js';
import type { ResourcePool } from '../resource-pool.js';
import { PoolCounters } from './counters.js';

/** Where the parts emit the pool's events: the `FreshPool` itself. */
export interface PoolEventSink {
  listenerCount(event: keyof FreshPoolEvents): number;
  emit<E extends keyof FreshPoolEvents>(event: E, ...args: FreshPoolEvents[E]): boolean;
}

/**
 * Emits a pool event without letting a throwing listener leave the pool half-way through a
 * state change (a slot lent with no holder, a destroy that skipped its top-up): the pool's
 * step finishes, and the listener's error is thrown afterwards, as an uncaught exception of
 * the listener's own, the way EventEmitter reports one.
 */
export function emitSafely<E extends keyof FreshPoolEvents>(core: { readonly events: PoolEventSink }, event: E, ...args: FreshPoolEvents[E]): void {
  try {
    core.events.emit(event, ...args);
  } catch (err) {
    process.nextTick(() => {
      throw err;
    });
  }
}

/** One pool's parts, counters and the state its paths read and set. Times are ms since the epoch. */
export class PoolCore {
  readonly config: ResolvedConfig;
  /** The pool's log, every line carrying `pool`; see `poolLog`. */
  readonly log: PoolLog;
  readonly events: PoolEventSink;
  readonly connector: Connector;
  readonly resources: ResourcePool<PoolEntry>;
  readonly housekeeping: Housekeeping;
  readonly loopWatch: LoopWatch;
  readonly counters = new PoolCounters();
  /** Connections last used before this moment (ms) are checked before use: one was found dead. */
  suspectBeforeMs = 0;
  /**
   * Bumped by `cancelWaiting`: a borrow that began waiting before the bump gives up, with
   * `waitCancelReason`, at its next step (the queue rejects it; one being checked gives the
   * connection back after the check).
   */
  waitEpoch = 0;
  waitCancelReason: Error | undefined = undefined;
  /** The last failed ping, with the connect attempt count at that moment. */
  lastPingFailure: { error: Error; atAttempt: number } | undefined = undefined;
  /** The shutdown `end()` started; set from the first call on. */
  ending: Promise<void> | undefined = undefined;
  /** Set when an `end({ timeout })` expires: borrowed connections are being closed under their users. */
  forcedClose = false;
  /** `end()` has finished. */
  ended = false;
  /** Resolves the wait of `end()` for borrowed connections early (an `end({ timeout })` expired). */
  forceEnd: (() => void) | undefined = undefined;
  /** The timers of `end({ timeout })` calls, cleared when the shutdown finishes. */
  readonly endTimers = new Set<NodeJS.Timeout>();
  /** Connections being closed (COM_QUIT, bounded by `closeTimeout`); `end()` waits for them. */
  readonly closing = new Set<Promise<void>>();
  /**
   * ms `ready()` took to open its first connection, until a connect takes that connection:
   * the connector hands it over at once, so the one taking it reports this as its create time.
   */
  spareCreateMs: number | undefined = undefined;
  /**
   * When each connection's loan began (ms since the epoch; 0 once it came back), for the
   * 'release' event's `useMs`. Noted only while someone listens to 'release'; weak, so a
   * destroyed connection's note goes with it. Updated in place: no table churn per borrow.
   */
  readonly lentAtMs = new WeakMap<PoolEntry, number>();
  /** A loan's start was ever noted: until then the return path skips `lentAtMs` entirely. */
  lentAtNoted = false;

  /** Takes the parts the pool built; they call back into the paths, which take this core. */
  constructor(parts: Pick<PoolCore, 'config' | 'log' | 'events' | 'connector' | 'resources' | 'housekeeping' | 'loopWatch'>) {
    this.config = parts.config;
    this.log = parts.log;
    this.events = parts.events;
    this.connector = parts.connector;
    this.resources = parts.resources;
    this.housekeeping = parts.housekeeping;
    this.loopWatch = parts.loopWatch;
  }

  /** A frozen snapshot of the pool's counters. */
  stats(): PoolStats {
    return this.counters.snapshot(this.resources, this.connector);
  }
}
