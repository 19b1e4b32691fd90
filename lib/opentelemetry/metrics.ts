/**
 * OpenTelemetry metrics of pools and clusters: the semantic conventions' connection-pool
 * metrics (`db.client.connection.*`) and this pool's own counters under a prefix.
 *
 * Gauges and counters are read from `stats()` in one batch callback when the SDK collects:
 * nothing is added to the borrow path. The three time histograms need one value per borrow,
 * connection or loan, so they listen to the pool's 'acquire', 'release' and 'create' events;
 * the timeouts counter to 'acquireTimeout'.
 */
import { metrics, type Attributes, type BatchObservableCallback, type Histogram, type Meter, type MeterProvider } from '@opentelemetry/api';
import { InvalidArgumentError } from '../errors.js';
import type { AcquireEvent, AcquireTimeoutEvent, CreateEvent, ReleaseEvent } from '../events.js';
import { ATTR, ATTR_STATE, SEMCONV_METRICS } from './names.js';
import { poolSources, type TelemetryTarget } from './targets.js';

/** Defaults of `registerPoolMetrics`'s options. */
export const METRICS_DEFAULTS = Object.freeze({
  /** Prefix of this library's own metric names. */
  prefix: 'mysql_fresh_pool.',
  /**
   * Bucket boundaries of the time histograms, seconds. 0 first: a borrow lent at once (under
   * 1 ms) has a bucket of its own. Up to a minute, for long loans.
   */
  timeBuckets: Object.freeze([0, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]) as readonly number[],
});

/** Options of `registerPoolMetrics`. */
export interface PoolMetricsOptions {
  /**
   * Where the instruments are made (meter `mysql-fresh-pool`). Default: the global provider,
   * `metrics.getMeterProvider()`, read at this call: register the SDK's provider first, or the
   * API's no-op one gets the instruments and nothing is ever reported.
   */
  meterProvider?: MeterProvider;
  /**
   * Prefix of this library's own metrics (evictions, pings, ...), not of the
   * `db.client.connection.*` ones. Letters, digits, `_ . - /`, starting with a letter. Default
   * `mysql_fresh_pool.`.
   */
  prefix?: string;
  /**
   * Bucket boundaries of the `create_time`, `wait_time` and `use_time` histograms, in seconds,
   * increasing; given to the SDK as advice (a View overrides it). Default
   * `METRICS_DEFAULTS.timeBuckets` (0 to 60 s).
   */
  timeBuckets?: readonly number[];
}

/** This library's own counters, each name after the prefix; all are monotonic totals since the pool started. */
const OWN = {
  evictions: 'connection.evictions',
  connectAttempts: 'connect.attempts',
  connectFailures: 'connect.failures',
  pings: 'pings',
  pingFailures: 'ping_failures',
  loopStalls: 'loop_stalls',
} as const;

// OpenTelemetry's instrument-name syntax: a letter, then up to 254 of these.
const NAME_PREFIX = /^[A-Za-z][A-Za-z0-9_./-]*$/;
const LONGEST_OWN = Math.max(...Object.values(OWN).map((n) => n.length));

/**
 * Reports the metrics of `pools` (pools and clusters, each cluster standing for its node
 * pools) on an OpenTelemetry meter. Returns a function that stops reporting them: it removes
 * the collection callback and the event listeners (OpenTelemetry cannot remove instruments;
 * they stop receiving values).
 *
 * Every data point carries `db.client.connection.pool.name` (the pool's `name`; a node pool's
 * is `<cluster>.<node>`), and for a node pool `mysql_fresh_pool.cluster.name` and
 * `mysql_fresh_pool.node.name`. The node's role is left out, so a failover changes values,
 * not which series exist.
 *
 * Semantic conventions (names as in `@opentelemetry/semantic-conventions` 1.45):
 * - `db.client.connection.count` `{connection}`, by `db.client.connection.state`: `idle`
 *   (`stats().idle`) and `used` (`stats().borrowed`: lent, or being checked for a borrow);
 * - `db.client.connection.idle.max` `{connection}`: `max` (every connection may sit idle);
 * - `db.client.connection.idle.min` `{connection}`: `min`;
 * - `db.client.connection.limit` `{connection}`: `max`;
 * - `db.client.connection.pending_requests` `{request}`: borrows waiting (`stats().waiting`);
 * - `db.client.connection.timeouts` `{timeout}`: `AcquireTimeoutError`s since this call (borrows
 *   past `acquireTimeout`, statements whose replacement passed `reconnectTimeout`);
 * - histograms in seconds: `db.client.connection.create_time` (see `CreateEvent.createMs`),
 *   `db.client.connection.wait_time` (a borrow's wait, checks included: `AcquireEvent.waitMs`),
 *   `db.client.connection.use_time` (how long a connection was lent: `ReleaseEvent.useMs`).
 *
 * Own counters, each name after `prefix` (default `mysql_fresh_pool.`), read from `stats()`:
 * `connection.evictions` `{connection}` by `mysql_fresh_pool.eviction.reason`,
 * `connect.attempts` `{attempt}`, `connect.failures` `{attempt}`, `pings` `{ping}`,
 * `ping_failures` `{ping}` and `loop_stalls` `{stall}`.
 *
 * Throws `InvalidArgumentError` (field `pools`, `prefix`, `timeBuckets` or `meterProvider`)
 * and reports nothing when an argument is unusable, or when two pools share a name.
 */
export function registerPoolMetrics(pools: TelemetryTarget | readonly TelemetryTarget[], options: PoolMetricsOptions = {}): () => void {
  const sources = poolSources(pools);
  const prefix = options.prefix ?? METRICS_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !NAME_PREFIX.test(prefix) || prefix.length + LONGEST_OWN > 255) {
    throw new InvalidArgumentError('prefix', prefix, 'expected an OpenTelemetry instrument name prefix: a letter, then letters, digits or _ . - /');
  }
  const buckets = options.timeBuckets ?? METRICS_DEFAULTS.timeBuckets;
  if (!Array.isArray(buckets) || buckets.length === 0 || !buckets.every((b, i) => Number.isFinite(b) && (i === 0 || b > buckets[i - 1]!))) {
    throw new InvalidArgumentError('timeBuckets', buckets, 'expected increasing finite numbers of seconds');
  }
  const provider = options.meterProvider ?? metrics.getMeterProvider();
  if (typeof (provider as Partial<MeterProvider> | null)?.getMeter !== 'function') {
    throw new InvalidArgumentError('meterProvider', provider, 'expected an OpenTelemetry MeterProvider');
  }
  const meter: Meter = provider.getMeter('mysql-fresh-pool');

  const gauge = (name: string, unit: string, description: string) => meter.createObservableUpDownCounter(name, { unit, description });
  const counter = (name: string, unit: string, description: string) => meter.createObservableCounter(name, { unit, description });
  const histogram = (name: string, description: string): Histogram =>
    meter.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: [...buckets] } });

  const count = gauge(SEMCONV_METRICS.count, '{connection}', 'The number of connections that are currently in state described by the state attribute.');
  const idleMax = gauge(SEMCONV_METRICS.idleMax, '{connection}', 'The maximum number of idle open connections allowed.');
  const idleMin = gauge(SEMCONV_METRICS.idleMin, '{connection}', 'The minimum number of idle open connections allowed.');
  const limit = gauge(SEMCONV_METRICS.limit, '{connection}', 'The maximum number of open connections allowed.');
  const pending = gauge(SEMCONV_METRICS.pendingRequests, '{request}', 'The number of current pending requests for an open connection.');
  const timeouts = counter(SEMCONV_METRICS.timeouts, '{timeout}', 'The number of connection timeouts that have occurred trying to obtain a connection from the pool.');
  const evictions = counter(prefix + OWN.evictions, '{connection}', 'Connections closed by the pool, by reason.');
  const connectAttempts = counter(prefix + OWN.connectAttempts, '{attempt}', 'Connect attempts made.');
  const connectFailures = counter(prefix + OWN.connectFailures, '{attempt}', 'Connect attempts that failed.');
  const pings = counter(prefix + OWN.pings, '{ping}', 'Validation and keep-alive pings sent.');
  const pingFailures = counter(prefix + OWN.pingFailures, '{ping}', 'Pings that failed or timed out.');
  const loopStalls = counter(prefix + OWN.loopStalls, '{stall}', 'Borrows or statements that waited one loop turn because the event loop had stalled.');
  const createTime = histogram(SEMCONV_METRICS.createTime, 'The time it took to create a new connection.');
  const waitTime = histogram(SEMCONV_METRICS.waitTime, 'The time it took to obtain an open connection from the pool.');
  const useTime = histogram(SEMCONV_METRICS.useTime, 'The time between borrowing a connection and returning it to the pool.');

  // Per pool: the attribute sets, made once, and the timeouts heard (no stats() field holds them).
  const watched = sources.map((source) => {
    const base = source.attributes;
    const state = {
      pool: source.pool,
      base,
      idle: Object.freeze({ ...base, [ATTR_STATE]: 'idle' }),
      used: Object.freeze({ ...base, [ATTR_STATE]: 'used' }),
      byReason: new Map<string, Attributes>(),
      timeouts: 0,
      listeners: {
        create: (e: CreateEvent) => createTime.record(e.createMs / 1000, base),
        acquire: (e: AcquireEvent) => waitTime.record(e.waitMs / 1000, base),
        release: (e: ReleaseEvent) => {
          if (e.useMs !== undefined) useTime.record(e.useMs / 1000, base);
        },
        acquireTimeout: (_: AcquireTimeoutEvent) => {
          state.timeouts++;
        },
      },
    };
    return state;
  });

  const observables = [count, idleMax, idleMin, limit, pending, timeouts, evictions, connectAttempts, connectFailures, pings, pingFailures, loopStalls];
  const collect: BatchObservableCallback = (result) => {
    for (const w of watched) {
      const s = w.pool.stats();
      const base = w.base;
      result.observe(count, s.idle, w.idle);
      result.observe(count, s.borrowed, w.used);
      result.observe(idleMax, s.max, base);
      result.observe(idleMin, s.min, base);
      result.observe(limit, s.max, base);
      result.observe(pending, s.waiting, base);
      result.observe(timeouts, w.timeouts, base);
      for (const [reason, n] of Object.entries(s.destroyed)) {
        let attributes = w.byReason.get(reason);
        if (attributes === undefined) {
          attributes = Object.freeze({ ...base, [ATTR.evictionReason]: reason });
          w.byReason.set(reason, attributes);
        }
        result.observe(evictions, n, attributes);
      }
      result.observe(connectAttempts, s.connectAttempts, base);
      result.observe(connectFailures, s.connectFailures, base);
      result.observe(pings, s.pings, base);
      result.observe(pingFailures, s.pingFailures, base);
      result.observe(loopStalls, s.loopStalls, base);
    }
  };
  meter.addBatchObservableCallback(collect, observables);
  for (const w of watched) {
    const on = w.listeners;
    w.pool.on('create', on.create).on('acquire', on.acquire).on('release', on.release).on('acquireTimeout', on.acquireTimeout);
  }

  let registered = true;
  return () => {
    if (!registered) return;
    registered = false;
    meter.removeBatchObservableCallback(collect, observables);
    for (const w of watched) {
      const on = w.listeners;
      w.pool.off('create', on.create).off('acquire', on.acquire).off('release', on.release).off('acquireTimeout', on.acquireTimeout);
    }
  };
}
