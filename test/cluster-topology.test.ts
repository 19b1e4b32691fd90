// The pure decisions of a cluster: roles and health from what the monitor saw, and the
// node a borrow goes to. No server, no clock.
import t from 'tap';
import { pickNode } from '../lib/cluster/router.js';
import { decideTopology, type GaleraStatus, type NodeInput, type NodeObservation, type ReplicaStatus } from '../lib/cluster/topology.js';

const options = { maxReplicationLagMs: 10_000, galeraWriters: 'one' as const };

const primary = (readOnly = false): NodeObservation => ({ reachable: true, readOnly, galera: undefined, replica: undefined, error: undefined });
const replica = (r: Partial<ReplicaStatus> = {}): NodeObservation => ({
  reachable: true,
  readOnly: true,
  galera: undefined,
  replica: { ioRunning: true, sqlRunning: true, lagSeconds: 0, ...r },
  error: undefined,
});
const galera = (g: Partial<GaleraStatus> = {}, readOnly = false): NodeObservation => ({
  reachable: true,
  readOnly,
  galera: { ready: true, localState: 4, clusterStatus: 'Primary', localIndex: 0, clusterSize: 3, ...g },
  replica: undefined,
  error: undefined,
});
const down = (o: NodeObservation): NodeObservation => ({ ...o, reachable: false, error: new Error('ECONNREFUSED') });
const input = (name: string, observation: NodeObservation | undefined, suspect = false): NodeInput => ({ name, observation, suspect });
const roles = (states: ReturnType<typeof decideTopology>) => Object.fromEntries(states.map((s) => [s.name, `${s.role}/${s.health}`]));

t.test('replication: the writable node that replicates from no one writes; replicas within the lag bound read', async (t) => {
  const states = decideTopology([input('p', primary()), input('r1', replica()), input('r2', replica({ lagSeconds: 3 }))], new Set(), options);
  t.same(roles(states), { p: 'writer/up', r1: 'reader/up', r2: 'reader/up' });
  t.equal(states[2]!.lagSeconds, 3);
});

t.test('replication: lag past the bound, a stopped thread or unknown lag take a replica out of reads', async (t) => {
  const states = decideTopology(
    [
      input('p', primary()),
      input('lagging', replica({ lagSeconds: 11 })),
      input('sqlStopped', replica({ sqlRunning: false, lagSeconds: null })),
      input('ioStopped', replica({ ioRunning: false, lagSeconds: 0 })),
      input('nullLag', replica({ lagSeconds: null })),
      input('atBound', replica({ lagSeconds: 10 })),
    ],
    new Set(),
    options,
  );
  t.same(roles(states), {
    p: 'writer/up',
    lagging: 'none/lagging',
    sqlStopped: 'none/replicationBroken',
    ioStopped: 'none/sourceLost',
    nullLag: 'none/replicationBroken',
    atBound: 'reader/up',
  });
});

t.test('replication failover: primary down means no writer until a promoted replica is writable', async (t) => {
  const during = decideTopology([input('p', down(primary())), input('r1', replica()), input('r2', replica())], new Set(['p']), options);
  t.same(roles(during), { p: 'none/down', r1: 'reader/up', r2: 'reader/up' });
  const after = decideTopology([input('p', down(primary())), input('r1', primary()), input('r2', replica())], new Set(), options);
  t.same(roles(after), { p: 'none/down', r1: 'writer/up', r2: 'reader/up' });
});

t.test('replication switchover: a read-only primary stops writing; two writable nodes keep the previous writer', async (t) => {
  const both = decideTopology([input('old', primary()), input('new', primary())], new Set(['new']), options);
  t.same(roles(both), { old: 'reader/up', new: 'writer/up' }, 'the writer stays while it qualifies');
  const firstSeen = decideTopology([input('old', primary()), input('new', primary())], new Set(), options);
  t.same(roles(firstSeen), { old: 'reader/up', new: 'reader/up' }, 'two writable nodes, none the last writer: no writer (never an unfenced one by accident)');
  const demoted = decideTopology([input('old', primary(true)), input('new', primary())], new Set(['old']), options);
  t.same(roles(demoted), { old: 'reader/up', new: 'writer/up' });
});

t.test('a suspect node (wrong-node error) takes nothing until its next check; an unchecked node neither', async (t) => {
  const states = decideTopology([input('p', primary(), true), input('r', replica()), input('new', undefined)], new Set(['p']), options);
  t.same(roles(states), { p: 'none/suspect', r: 'reader/up', new: 'none/unknown' });
});

t.test('Galera: usable only while ready, Synced and Primary; one writer, the lowest local index, kept while it qualifies', async (t) => {
  const nodes = [input('a', galera({ localIndex: 2 })), input('b', galera({ localIndex: 0 })), input('c', galera({ localIndex: 1 }))];
  t.same(roles(decideTopology(nodes, new Set(), options)), { a: 'reader/up', b: 'writer/up', c: 'reader/up' });
  t.same(roles(decideTopology(nodes, new Set(['a']), options)), { a: 'writer/up', b: 'reader/up', c: 'reader/up' }, 'no failback while a qualifies');
  const isolated = decideTopology(
    [input('a', galera({ localIndex: 0, ready: false, clusterStatus: 'non-Primary', localState: 0 })), input('b', galera({ localIndex: 1 })), input('c', galera({ localIndex: 2, localState: 2 }))],
    new Set(['a']),
    options,
  );
  t.same(roles(isolated), { a: 'none/notSynced', b: 'writer/up', c: 'none/notSynced' }, 'a donor (state 2) and a non-primary node take nothing');
  const all = decideTopology(nodes, new Set(), { ...options, galeraWriters: 'all' });
  t.same(roles(all), { a: 'writer/up', b: 'writer/up', c: 'writer/up' });
  const down3 = decideTopology([input('a', down(galera())), input('b', down(galera())), input('c', down(galera()))], new Set(), options);
  t.same(roles(down3), { a: 'none/down', b: 'none/down', c: 'none/down' });
  t.equal(down3[0]!.kind, 'galera', 'a node that is down keeps its kind');
});

t.test('routing: reads to the least borrowed reader, round-robin among equals, the writer when no reader is up', async (t) => {
  const states = decideTopology([input('p', primary()), input('r1', replica()), input('r2', replica())], new Set(), options);
  const borrowed: Record<string, number> = { p: 0, r1: 0, r2: 0 };
  const of = (n: string) => borrowed[n]!;
  t.same([0, 1, 2, 3].map((turn) => pickNode('reader', states, of, turn)), ['r1', 'r2', 'r1', 'r2']);
  borrowed.r1 = 3;
  t.same([0, 1].map((turn) => pickNode('reader', states, of, turn)), ['r2', 'r2'], 'the least borrowed first');
  t.equal(pickNode('writer', states, of, 7), 'p');
  const noReplicas = decideTopology([input('p', primary()), input('r1', down(replica())), input('r2', replica({ lagSeconds: null }))], new Set(), options);
  t.equal(pickNode('reader', noReplicas, of, 0), 'p', 'reads fall back to the writer');
  const noWriter = decideTopology([input('p', down(primary())), input('r1', replica())], new Set(), options);
  t.equal(pickNode('writer', noWriter, of, 0), undefined, 'no writer: the borrow waits');
  t.equal(pickNode('reader', noWriter, of, 0), 'r1', 'reads go on during a failover');
});
