/**
 * Prometheus metrics for one or more pools, on a prom-client registry. A separate entry point
 * (`mysql-fresh-pool/prometheus`), so the library imports without prom-client installed.
 *
 * Every series carries a `pool` label (the pool's `name`); counters end in `_total`, times are
 * in seconds. Values are read from `pool.stats()` when the registry is scraped: nothing is
 * added to the borrow path.
 */
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import type { PoolStats } from './errors.js';
import { InvalidArgumentError } from './errors.js';
import type { FreshPool } from './pool/index.js';

/** Options of `registerPoolMetrics`. */
export interface PoolMetricsOptions {
  /** Where to register. Default: prom-client's global registry. */
  registry?: Registry;
  /** Prefix of every metric name. Default `mysql_fresh_pool_`. */
  prefix?: string;
}

type Metric = Counter<string> | Gauge<string>;

/**
 * Registers the pools' gauges and counters. Pool names must be unique. Returns a function
 * that removes the metrics again.
 */
export function registerPoolMetrics(pools: FreshPool | readonly FreshPool[], options: PoolMetricsOptions = {}): () => void {
  const list = Array.isArray(pools) ? [...(pools as readonly FreshPool[])] : [pools as FreshPool];
  const names = list.map((p) => p.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new InvalidArgumentError('pools', duplicate, 'pool names must be unique: they label the series');
  const prefix = options.prefix ?? 'mysql_fresh_pool_';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw new InvalidArgumentError('prefix', prefix, 'expected a Prometheus metric name prefix');
  const registry = options.registry ?? defaultRegistry;
  const snapshot = () => list.map((pool) => [pool.name, pool.stats()] as const);

  const gauge = (name: string, help: string, labelNames: string[], read: (s: PoolStats) => Array<[Record<string, string>, number]>): Gauge<string> =>
    new Gauge({
      name: prefix + name,
      help,
      labelNames: ['pool', ...labelNames],
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, s] of snapshot()) for (const [labels, value] of read(s)) this.set({ pool, ...labels }, value);
      },
    });
  const counter = (name: string, help: string, labelNames: string[], read: (s: PoolStats) => Array<[Record<string, string>, number]>): Counter<string> =>
    new Counter({
      name: prefix + name,
      help,
      labelNames: ['pool', ...labelNames],
      registers: [registry],
      collect() {
        // A counter is only ever incremented; the pool keeps the running total.
        this.reset();
        for (const [pool, s] of snapshot()) for (const [labels, value] of read(s)) this.inc({ pool, ...labels }, value);
      },
    });
  const one = (value: number): Array<[Record<string, string>, number]> => [[{}, value]];

  const metrics: Metric[] = [
    gauge('connections', 'Open connections, by state.', ['state'], (s) => [
      [{ state: 'idle' }, s.idle],
      [{ state: 'borrowed' }, s.borrowed],
    ]),
    gauge('connections_max', 'Most connections the pool may open (max).', [], (s) => one(s.max)),
    gauge('connections_min', 'Connections the pool keeps open (min).', [], (s) => one(s.min)),
    gauge('waiting_borrows', 'Borrows waiting for a connection.', [], (s) => one(s.waiting)),
    counter('connections_created_total', 'Connections opened.', [], (s) => one(s.created)),
    counter('connections_destroyed_total', 'Connections closed, by reason.', ['reason'], (s) =>
      Object.entries(s.destroyed).map(([reason, n]) => [{ reason }, n]),
    ),
    counter('pings_total', 'Validation and keep-alive pings sent.', [], (s) => one(s.pings)),
    counter('ping_failures_total', 'Pings that failed or timed out.', [], (s) => one(s.pingFailures)),
    counter('connect_attempts_total', 'Connect attempts.', [], (s) => one(s.connectAttempts)),
    counter('connect_failures_total', 'Connect attempts that failed.', [], (s) => one(s.connectFailures)),
    counter('loop_stalls_total', 'Borrows or statements that waited a loop turn after the event loop stalled.', [], (s) => one(s.loopStalls)),
    counter('acquires_total', 'Borrows that got a connection.', [], (s) => one(s.acquires)),
    counter('acquire_wait_seconds_total', 'Time borrows spent waiting for a connection.', [], (s) => one(s.acquireWaitMsTotal / 1000)),
    gauge('acquire_wait_seconds_max', 'Longest wait of a single borrow since the pool started.', [], (s) => one(s.acquireWaitMsMax / 1000)),
    counter('validation_seconds_total', 'Time spent checking connections before lending them.', [], (s) => one(s.validationMsTotal / 1000)),
  ];
  return () => {
    for (const metric of metrics) registry.removeSingleMetric((metric as unknown as { name: string }).name);
  };
}
