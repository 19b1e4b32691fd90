/**
 * Prometheus metrics for pools and clusters, on a prom-client registry. A separate entry point
 * (`mysql-fresh-pool/prometheus`), so the library imports without prom-client installed.
 *
 * Every pool series carries a `pool` label (the pool's `name`); a cluster's node pools carry
 * `cluster` and `node` labels as well. Counters end in `_total`, times are in seconds. Values
 * are read from `stats()` when the registry is scraped: nothing is added to the borrow path.
 */
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import type { ClusterStats, FreshCluster, NodeHealth, NodeRole } from './cluster/index.js';
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

/** What `registerPoolMetrics` takes: a pool, or a cluster (its node pools and its topology). */
export type MetricsTarget = FreshPool | FreshCluster;

type Metric = Counter<string> | Gauge<string>;
type Labels = Record<string, string>;
type Samples = Array<[Labels, number]>;

/** The values of the role and health state sets, every one always exported (0 or 1). */
const ROLES = ['writer', 'reader', 'none'] as const satisfies readonly NodeRole[];
const HEALTHS = ['up', 'down', 'suspect', 'lagging', 'replicationBroken', 'sourceLost', 'notSynced', 'unknown'] as const satisfies readonly NodeHealth[];
// A role or health added to the cluster and not listed here fails the typecheck.
const everyRole: [Exclude<NodeRole, (typeof ROLES)[number]>] extends [never] ? true : false = true;
const everyHealth: [Exclude<NodeHealth, (typeof HEALTHS)[number]>] extends [never] ? true : false = true;
void everyRole;
void everyHealth;

/** A pool to export: its stats, and the `cluster`/`node` labels when it is a cluster's node pool. */
interface PoolSource {
  readonly name: string;
  readonly labels: Labels;
  /** Its stats, from the scrape's snapshot of the cluster for a node pool. */
  stats(clusters: ReadonlyMap<FreshCluster, ClusterStats>): PoolStats;
}

/** What one scrape reads: each cluster's `stats()` once, then each pool's. */
interface Snapshot {
  readonly clusters: ReadonlyMap<FreshCluster, ClusterStats>;
  readonly pools: readonly PoolStats[];
}

/**
 * Registers the series of pools and clusters, all in one call: prom-client takes each metric
 * name once per registry, so a second call on the same registry needs another `prefix`.
 * Returns a function that removes every series this call registered.
 *
 * For a pool, the pool series below, labelled `pool` (the pool's `name`). For a cluster, the
 * same pool series for each node's pool, labelled `pool` (`<cluster>.<node>`), `cluster` and
 * `node`; and the cluster series, labelled `cluster` (the cluster's `name`) and `node`:
 * - `cluster_has_writer{cluster}`: 1 while a node is the writer, 0 during a failover;
 * - `cluster_node_role{cluster,node,role}`: one series per role (`writer`, `reader`, `none`),
 *   1 for the node's current role, 0 for the others, so a failover changes values, never
 *   which series exist;
 * - `cluster_node_health{cluster,node,health}`: the same for health (`up`, `down`, `suspect`,
 *   `lagging`, `replicationBroken`, `notSynced`, `unknown`);
 * - `cluster_node_up{cluster,node}`: 1 while the node's health is `up`, else 0;
 * - `cluster_replication_lag_seconds{cluster,node}`: a replica's `Seconds_Behind_Master`,
 *   present only while the lag is known (absent on a primary, a Galera node, a broken replica).
 *
 * Pool series: `connections{state="idle|borrowed"}`, `connections_max`, `connections_min`,
 * `waiting_borrows`, `connections_created_total`, `connections_destroyed_total{reason}`,
 * `pings_total`, `ping_failures_total`, `connect_attempts_total`, `connect_failures_total`,
 * `loop_stalls_total`, `acquires_total`, `acquire_wait_seconds_total`,
 * `acquire_wait_seconds_max`, `validation_seconds_total`, each name after `prefix`.
 *
 * Every value is read from `stats()` at scrape time, once per pool or cluster per scrape. Pool
 * names must be unique across everything given (a cluster's node pools included), and so must
 * cluster names; otherwise `InvalidArgumentError` (field `pools`) and nothing is registered.
 */
export function registerPoolMetrics(pools: MetricsTarget | readonly MetricsTarget[], options: PoolMetricsOptions = {}): () => void {
  const targets: MetricsTarget[] = Array.isArray(pools) ? [...(pools as readonly MetricsTarget[])] : [pools as MetricsTarget];
  for (const target of targets) {
    if (target === null || typeof target !== 'object' || typeof target.stats !== 'function' || typeof target.name !== 'string') {
      throw new InvalidArgumentError('pools', target, 'expected a pool from createPool or a cluster from createCluster');
    }
  }
  const clusters = targets.filter(isCluster);
  const sources: PoolSource[] = targets.flatMap((target): PoolSource[] => {
    if (!isCluster(target)) return [{ name: target.name, labels: {}, stats: () => target.stats() }];
    return [...target.pools].map(([node, pool]) => ({
      name: pool.name,
      labels: { cluster: target.name, node },
      stats: (byCluster) => byCluster.get(target)!.nodes.find((n) => n.name === node)?.pool ?? pool.stats(),
    }));
  });
  const names = sources.map((p) => p.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new InvalidArgumentError('pools', duplicate, 'pool names must be unique: they label the series');
  const clusterNames = clusters.map((c) => c.name);
  const duplicateCluster = clusterNames.find((n, i) => clusterNames.indexOf(n) !== i);
  if (duplicateCluster !== undefined) throw new InvalidArgumentError('pools', duplicateCluster, 'cluster names must be unique: they label the series');
  const prefix = options.prefix ?? 'mysql_fresh_pool_';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw new InvalidArgumentError('prefix', prefix, 'expected a Prometheus metric name prefix');
  const registry = options.registry ?? defaultRegistry;

  // prom-client calls every metric's collect() in the same tick of a scrape: one snapshot per
  // scrape, so the series of one scrape agree with each other (a role and has_writer, say).
  let current: Snapshot | undefined;
  const snapshot = (): Snapshot => {
    if (current === undefined) {
      const byCluster = new Map(clusters.map((c) => [c, c.stats()]));
      current = { clusters: byCluster, pools: sources.map((source) => source.stats(byCluster)) };
      queueMicrotask(() => (current = undefined));
    }
    return current;
  };

  const poolSamples = (read: (s: PoolStats) => Samples): Samples => {
    const now = snapshot();
    return sources.flatMap((source, i) => {
      const base = { pool: source.name, ...source.labels };
      return read(now.pools[i]!).map(([labels, value]): [Labels, number] => [{ ...base, ...labels }, value]);
    });
  };
  const clusterSamples = (read: (s: ClusterStats) => Samples): Samples => {
    const now = snapshot();
    return clusters.flatMap((cluster) => read(now.clusters.get(cluster)!).map(([labels, value]): [Labels, number] => [{ cluster: cluster.name, ...labels }, value]));
  };

  const gauge = (name: string, help: string, labelNames: string[], samples: () => Samples): Gauge<string> =>
    new Gauge({
      name: prefix + name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, value] of samples()) this.set(labels, value);
      },
    });
  const counter = (name: string, help: string, labelNames: string[], samples: () => Samples): Counter<string> =>
    new Counter({
      name: prefix + name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        // A counter is only ever incremented; the pool keeps the running total.
        this.reset();
        for (const [labels, value] of samples()) this.inc(labels, value);
      },
    });
  const POOL_LABELS = ['pool', 'cluster', 'node'];
  const poolGauge = (name: string, help: string, labelNames: string[], read: (s: PoolStats) => Samples) =>
    gauge(name, help, [...POOL_LABELS, ...labelNames], () => poolSamples(read));
  const poolCounter = (name: string, help: string, labelNames: string[], read: (s: PoolStats) => Samples) =>
    counter(name, help, [...POOL_LABELS, ...labelNames], () => poolSamples(read));
  const clusterGauge = (name: string, help: string, labelNames: string[], read: (s: ClusterStats) => Samples) =>
    gauge(name, help, ['cluster', ...labelNames], () => clusterSamples(read));
  const one = (value: number): Samples => [[{}, value]];
  const stateSet = <S extends string>(label: string, states: readonly S[], pick: (n: ClusterStats['nodes'][number]) => S) => (s: ClusterStats): Samples =>
    s.nodes.flatMap((n) => {
      const now = pick(n);
      const all: readonly S[] = states.includes(now) ? states : [...states, now];
      return all.map((state): [Labels, number] => [{ node: n.name, [label]: state }, state === now ? 1 : 0]);
    });

  const metrics: Metric[] = [];
  try {
    metrics.push(
      poolGauge('connections', 'Open connections, by state.', ['state'], (s) => [
        [{ state: 'idle' }, s.idle],
        [{ state: 'borrowed' }, s.borrowed],
      ]),
      poolGauge('connections_max', 'Most connections the pool may open (max).', [], (s) => one(s.max)),
      poolGauge('connections_min', 'Connections the pool keeps open (min).', [], (s) => one(s.min)),
      poolGauge('waiting_borrows', 'Borrows waiting for a connection.', [], (s) => one(s.waiting)),
      poolCounter('connections_created_total', 'Connections opened.', [], (s) => one(s.created)),
      poolCounter('connections_destroyed_total', 'Connections closed, by reason.', ['reason'], (s) =>
        Object.entries(s.destroyed).map(([reason, n]): [Labels, number] => [{ reason }, n]),
      ),
      poolCounter('pings_total', 'Validation and keep-alive pings sent.', [], (s) => one(s.pings)),
      poolCounter('ping_failures_total', 'Pings that failed or timed out.', [], (s) => one(s.pingFailures)),
      poolCounter('connect_attempts_total', 'Connect attempts.', [], (s) => one(s.connectAttempts)),
      poolCounter('connect_failures_total', 'Connect attempts that failed.', [], (s) => one(s.connectFailures)),
      poolCounter('loop_stalls_total', 'Borrows or statements that waited a loop turn after the event loop stalled.', [], (s) => one(s.loopStalls)),
      poolCounter('acquires_total', 'Borrows that got a connection.', [], (s) => one(s.acquires)),
      poolCounter('acquire_wait_seconds_total', 'Time borrows spent waiting for a connection.', [], (s) => one(s.acquireWaitMsTotal / 1000)),
      poolGauge('acquire_wait_seconds_max', 'Longest wait of a single borrow since the pool started.', [], (s) => one(s.acquireWaitMsMax / 1000)),
      poolCounter('validation_seconds_total', 'Time spent checking connections before lending them.', [], (s) => one(s.validationMsTotal / 1000)),
    );
    if (clusters.length > 0) {
      metrics.push(
        clusterGauge('cluster_has_writer', 'Whether the cluster has a writer now (1) or not (0, a failover under way).', [], (s) => one(s.writer === undefined ? 0 : 1)),
        clusterGauge('cluster_node_role', "The node's role: 1 for its current role, 0 for the others.", ['node', 'role'], stateSet('role', ROLES, (n) => n.role)),
        clusterGauge('cluster_node_health', "The node's health: 1 for its current health, 0 for the others.", ['node', 'health'], stateSet('health', HEALTHS, (n) => n.health)),
        clusterGauge('cluster_node_up', "Whether the node's health is up (1) or not (0).", ['node'], (s) => s.nodes.map((n): [Labels, number] => [{ node: n.name }, n.health === 'up' ? 1 : 0])),
        clusterGauge('cluster_replication_lag_seconds', "A replica's lag behind its source (Seconds_Behind_Master), while known.", ['node'], (s) =>
          s.nodes.flatMap((n): Samples => (typeof n.lagSeconds === 'number' ? [[{ node: n.name }, n.lagSeconds]] : [])),
        ),
      );
    }
  } catch (err) {
    // A name already on the registry: leave it as it was.
    for (const metric of metrics) registry.removeSingleMetric(metricName(metric));
    throw err;
  }
  return () => {
    for (const metric of metrics) registry.removeSingleMetric(metricName(metric));
  };
}

function metricName(metric: Metric): string {
  return (metric as unknown as { name: string }).name;
}

function isCluster(target: MetricsTarget): target is FreshCluster {
  return 'pools' in target && target.pools instanceof Map;
}
