// registerPoolMetrics with clusters: each node pool's series labelled `cluster` and `node`,
// and the cluster's own series (writer, roles, health, lag), read from cluster.stats() at
// scrape time. Two private servers, no replication: `a` writable, `b` read-only (a stand-alone
// read-only server is a reader); then the roles swap and the scrape follows.
import { Registry } from 'prom-client';
import t from 'tap';
import { createCluster, createPool, InvalidArgumentError, type ClusterStats, type FreshCluster, type PoolStats } from '../lib/index.js';
import { registerPoolMetrics } from '../lib/prometheus.js';
import { startServer } from './helpers/mariadb.js';
import { until } from './helpers/settle.js';

const [s1, s2] = await Promise.all([startServer(t), startServer(t)]);
await s2.query('SET GLOBAL read_only = 1');

const silent = { debug() {}, info() {}, warn() {}, error() {} };

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

const P = 'mysql_fresh_pool_';
const pick = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === P + name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const value = (samples: Sample[], name: string, labels: Record<string, string>): number | undefined => {
  const found = pick(samples, name, labels);
  if (found.length > 1) throw new Error(`${found.length} series for ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
};

/** Every pool series of one pool, with the value its stats give it. */
function expectedPoolSeries(labels: Record<string, string>, s: PoolStats): Array<[string, Record<string, string>, number]> {
  return [
    ['connections', { ...labels, state: 'idle' }, s.idle],
    ['connections', { ...labels, state: 'borrowed' }, s.borrowed],
    ['connections_max', labels, s.max],
    ['connections_min', labels, s.min],
    ['waiting_borrows', labels, s.waiting],
    ['connections_created_total', labels, s.created],
    ...Object.entries(s.destroyed).map(([reason, n]): [string, Record<string, string>, number] => ['connections_destroyed_total', { ...labels, reason }, n]),
    ['pings_total', labels, s.pings],
    ['ping_failures_total', labels, s.pingFailures],
    ['connect_attempts_total', labels, s.connectAttempts],
    ['connect_failures_total', labels, s.connectFailures],
    ['loop_stalls_total', labels, s.loopStalls],
    ['acquires_total', labels, s.acquires],
    ['acquire_wait_seconds_total', labels, s.acquireWaitMsTotal / 1000],
    ['acquire_wait_seconds_max', labels, s.acquireWaitMsMax / 1000],
    ['validation_seconds_total', labels, s.validationMsTotal / 1000],
  ];
}

/** Each node's role series: `{ a: { writer: 1, reader: 0, none: 0 }, ... }`. */
function roles(samples: Sample[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const s of pick(samples, 'cluster_node_role')) (out[`${s.labels.cluster}/${s.labels.node}`] ??= {})[s.labels.role!] = s.value;
  return out;
}

const ROLES_A_WRITES = { 'shop/a': { writer: 1, reader: 0, none: 0 }, 'shop/b': { writer: 0, reader: 1, none: 0 } };
const ROLES_B_WRITES = { 'shop/a': { writer: 0, reader: 1, none: 0 }, 'shop/b': { writer: 1, reader: 0, none: 0 } };
const ROLES_NO_WRITER = { 'shop/a': { writer: 0, reader: 1, none: 0 }, 'shop/b': { writer: 0, reader: 1, none: 0 } };
const HEALTHS = ['up', 'down', 'suspect', 'lagging', 'replicationBroken', 'sourceLost', 'notSynced', 'unknown'];

t.test('a cluster: node pools labelled cluster and node, roles, health, writer; a failover flips the role series', async (t) => {
  const cluster = createCluster({ name: 'shop', nodes: [{ name: 'a', uri: s1.url }, { name: 'b', uri: s2.url }], monitorInterval: 100, logger: silent });
  const solo = createPool({ connection: s1.url, name: 'solo', logger: silent });
  t.teardown(() => Promise.all([cluster.end(), solo.end()]));
  const registry = new Registry();
  const unregister = registerPoolMetrics([solo, cluster], { registry });
  await cluster.ready();
  await solo.query('SELECT 1');

  const before = cluster.stats();
  const acquiresBefore = Object.fromEntries(before.nodes.map((n) => [n.name, n.pool.acquires]));
  for (let i = 0; i < 3; i++) await cluster.query('SELECT 1');
  for (let i = 0; i < 2; i++) await cluster.query('SELECT 1', undefined, { readOnly: true });

  let text = await registry.metrics();
  let samples = parse(text);
  const stats = cluster.stats();
  t.equal(stats.writer, 'a', 'sanity: a writes');

  // Pool series: every one of each node pool, with pool, cluster and node labels.
  t.equal(value(samples, 'acquires_total', { pool: 'shop.a', cluster: 'shop', node: 'a' }), acquiresBefore.a! + 3, 'the writes counted on a');
  t.equal(value(samples, 'acquires_total', { pool: 'shop.b', cluster: 'shop', node: 'b' }), acquiresBefore.b! + 2, 'the reads counted on b');
  for (const node of stats.nodes) {
    for (const [name, labels, expected] of expectedPoolSeries({ pool: `shop.${node.name}`, cluster: 'shop', node: node.name }, node.pool)) {
      t.equal(value(samples, name, labels), expected, `${name} ${JSON.stringify(labels)}`);
    }
  }
  t.ok(text.split('\n').includes(`${P}connections{pool="shop.a",cluster="shop",node="a",state="idle"} ${stats.nodes[0]!.pool.idle}`), 'label order: pool, cluster, node, then the series own');
  // A stand-alone pool registered alongside keeps its series as before: no cluster, no node.
  const soloSeries = pick(samples, 'acquires_total', { pool: 'solo' });
  t.same(soloSeries.map((s) => s.labels), [{ pool: 'solo' }], 'a stand-alone pool has only its pool label');
  t.equal(soloSeries[0]!.value, solo.stats().acquires);
  t.same(
    [...new Set(pick(samples, 'acquires_total').map((s) => s.labels.pool))].sort(),
    ['shop.a', 'shop.b', 'solo'],
    'one acquires_total series per pool, no more',
  );

  // Cluster series.
  t.same(roles(samples), ROLES_A_WRITES, 'a writer, b reader: one series per role and node, 1 for the current role');
  t.equal(value(samples, 'cluster_has_writer', { cluster: 'shop' }), 1, 'the cluster has a writer');
  t.equal(value(samples, 'cluster_node_up', { cluster: 'shop', node: 'a' }), 1);
  t.equal(value(samples, 'cluster_node_up', { cluster: 'shop', node: 'b' }), 1);
  for (const node of ['a', 'b']) {
    const health = Object.fromEntries(pick(samples, 'cluster_node_health', { cluster: 'shop', node }).map((s) => [s.labels.health, s.value]));
    t.same(health, Object.fromEntries(HEALTHS.map((h) => [h, h === 'up' ? 1 : 0])), `${node}: every health listed, up = 1`);
  }
  t.same(pick(samples, 'cluster_replication_lag_seconds'), [], 'no replica, no lag series');
  const lines = text.split('\n');
  for (const name of ['cluster_has_writer', 'cluster_node_role', 'cluster_node_health', 'cluster_node_up', 'cluster_replication_lag_seconds']) {
    t.ok(lines.includes(`# TYPE ${P}${name} gauge`), `${name} is a gauge`);
    t.ok(lines.some((l) => l.startsWith(`# HELP ${P}${name} `)), `${name} has a HELP`);
  }
  t.notOk(pick(samples, 'cluster_node_role').some((s) => 'pool' in s.labels), 'cluster series carry no pool label');
  t.same(parse(await registry.metrics()).filter((s) => s.name.startsWith(`${P}cluster_`)), samples.filter((s) => s.name.startsWith(`${P}cluster_`)), 'a second scrape: the same cluster series');

  // The switchover, in two steps: a read-only too (no writer: both stand-alone readers), then b writable.
  await s1.query('SET GLOBAL read_only = 1');
  await until(() => cluster.stats().writer === undefined, 10_000, 'a to stop writing');
  samples = parse(await registry.metrics());
  t.equal(value(samples, 'cluster_has_writer', { cluster: 'shop' }), 0, 'no writer while both are read-only');
  t.same(roles(samples), ROLES_NO_WRITER, 'both readers');

  await s2.query('SET GLOBAL read_only = 0');
  await until(() => {
    const s = cluster.stats();
    return s.writer === 'b' && s.nodes.find((n) => n.name === 'a')!.role === 'reader';
  }, 10_000, 'b to become the writer');
  const acquiresB = cluster.stats().nodes.find((n) => n.name === 'b')!.pool.acquires;
  await cluster.query('SELECT 1');
  text = await registry.metrics();
  samples = parse(text);
  t.same(roles(samples), ROLES_B_WRITES, 'the role series flipped: b writer, a reader, and no other role series left');
  t.equal(pick(samples, 'cluster_node_role', { role: 'writer' }).filter((s) => s.value === 1).length, 1, 'exactly one writer series at 1');
  t.equal(value(samples, 'cluster_has_writer', { cluster: 'shop' }), 1);
  t.equal(value(samples, 'acquires_total', { pool: 'shop.b', cluster: 'shop', node: 'b' }), acquiresB + 1, 'a write after the switchover counted on b');
  for (const node of cluster.stats().nodes) {
    t.equal(value(samples, 'acquires_total', { node: node.name }), node.pool.acquires, `${node.name}: the same pool series identity after the role change`);
  }

  // unregister removes every series, the cluster's included.
  unregister();
  t.equal(registry.getMetricsAsArray().length, 0, 'registry empty after unregister()');
  t.notMatch(await registry.metrics(), /mysql_fresh_pool_/);
  const again = registerPoolMetrics(cluster, { registry });
  t.same(roles(parse(await registry.metrics())), ROLES_B_WRITES, 'registering again after unregister works');
  again();
});

t.test('only pools: no cluster series registered', async (t) => {
  const pool = createPool({ connection: s1.url, name: 'alone', logger: silent });
  t.teardown(() => pool.end());
  const registry = new Registry();
  const unregister = registerPoolMetrics(pool, { registry });
  t.notMatch(await registry.metrics(), /cluster_/, 'no cluster families');
  unregister();
});

// What real servers without replication cannot show: a replica's lag, a broken replica, a
// node down. The cluster's stats() stands in (the helper reads nothing else of it but its
// name and its node pools' names).
t.test('lag, broken replication and a node down, from stats()', async (t) => {
  const unused = createPool({ connection: s1.url, name: 'unused', logger: silent });
  t.teardown(() => unused.end());
  const poolStats = unused.stats();
  const node = (name: string, role: 'writer' | 'reader' | 'none', health: string, kind: string, lagSeconds: number | null | undefined) =>
    ({ name, role, health, kind, lagSeconds, pool: poolStats }) as ClusterStats['nodes'][number];
  let nodes = [
    node('p', 'writer', 'up', 'replication', undefined),
    node('r1', 'reader', 'up', 'replication', 2),
    node('r2', 'none', 'replicationBroken', 'replication', null),
    node('r3', 'none', 'lagging', 'replication', 42.5),
  ];
  let writer: string | undefined = 'p';
  const fake = {
    name: 'repl',
    stats: (): ClusterStats => ({ name: 'repl', writer, nodes }),
    pools: new Map(nodes.map((n) => [n.name, { name: `repl.${n.name}` }])),
  } as unknown as FreshCluster;
  const registry = new Registry();
  const unregister = registerPoolMetrics(fake, { registry, prefix: 'db_' });
  t.teardown(unregister);
  let text = await registry.metrics();
  const lag = text.split('\n').filter((l) => l.startsWith('db_cluster_replication_lag_seconds{'));
  t.same(lag, ['db_cluster_replication_lag_seconds{cluster="repl",node="r1"} 2', 'db_cluster_replication_lag_seconds{cluster="repl",node="r3"} 42.5'], 'lag only where known');
  t.ok(text.includes('db_cluster_node_health{cluster="repl",node="r2",health="replicationBroken"} 1'));
  t.ok(text.includes('db_cluster_node_health{cluster="repl",node="r2",health="up"} 0'));
  t.ok(text.includes('db_cluster_node_up{cluster="repl",node="r3"} 0'));
  t.ok(text.includes('db_acquires_total{pool="repl.r1",cluster="repl",node="r1"} 0'), 'node pool series from the cluster snapshot');

  // The primary goes down: no writer, p none/down; r1's lag becomes unknown and its series goes.
  writer = undefined;
  nodes = [node('p', 'none', 'down', 'replication', undefined), node('r1', 'none', 'replicationBroken', 'replication', null), nodes[2]!, nodes[3]!];
  text = await registry.metrics();
  t.ok(text.includes('db_cluster_has_writer{cluster="repl"} 0'));
  t.ok(text.includes('db_cluster_node_role{cluster="repl",node="p",role="none"} 1'));
  t.ok(text.includes('db_cluster_node_role{cluster="repl",node="p",role="writer"} 0'));
  t.ok(text.includes('db_cluster_node_health{cluster="repl",node="p",health="down"} 1'));
  t.same(
    text.split('\n').filter((l) => l.startsWith('db_cluster_replication_lag_seconds{')),
    ['db_cluster_replication_lag_seconds{cluster="repl",node="r3"} 42.5'],
    'the lag series of r1 is gone with its lag',
  );
});

t.test('invalid arguments: names clash across pools and clusters; nothing registered', async (t) => {
  const cluster = createCluster({ name: 'shop', nodes: [{ name: 'a', uri: s1.url }], monitorInterval: 100, logger: silent });
  const other = createCluster({ name: 'shop', nodes: [{ name: 'z', uri: s1.url }], monitorInterval: 100, logger: silent });
  const clash = createPool({ connection: s1.url, name: 'shop.a', logger: silent });
  t.teardown(() => Promise.all([cluster.end(), other.end(), clash.end()]));
  const registry = new Registry();
  t.throws(() => registerPoolMetrics([cluster, cluster.pools.get('a')!], { registry }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'shop.a' }, 'a cluster and its own node pool');
  t.throws(() => registerPoolMetrics([cluster, clash], { registry }), InvalidArgumentError, 'a pool named as a node pool');
  t.throws(() => registerPoolMetrics([cluster, cluster], { registry }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'shop.a' }, 'the same cluster twice');
  t.throws(() => registerPoolMetrics([cluster, other], { registry }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'shop' }, 'two clusters of one name');
  t.throws(() => registerPoolMetrics([{} as FreshCluster], { registry }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools' }, 'not a pool or cluster');
  t.equal(registry.getMetricsAsArray().length, 0, 'nothing registered');

  // A second call on the same registry with the same prefix fails on prom-client's duplicate
  // name and leaves the first call's series as they were.
  const unregister = registerPoolMetrics(cluster, { registry });
  const count = registry.getMetricsAsArray().length;
  t.throws(() => registerPoolMetrics(other, { registry }), /already been registered/);
  t.equal(registry.getMetricsAsArray().length, count, 'the first series untouched');
  unregister();
  t.equal(registry.getMetricsAsArray().length, 0);
});
