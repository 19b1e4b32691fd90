// createCluster's pure parts (topology, router, session, config), no server: the edge cases a
// review found. Each test began as a finding that failed on the first cluster code.
import t from 'tap';
import { resolveClusterConfig } from '../lib/cluster/config.js';
import { candidatesFor } from '../lib/cluster/router.js';
import { ClusterSession, GtidSet, type RoutedLease } from '../lib/cluster/session.js';
import { decideTopology, type GaleraStatus, type NodeInput, type NodeObservation, type NodeState, type ReplicaStatus } from '../lib/cluster/topology.js';
import { ConfigError, createCluster } from '../lib/index.js';

const options = { maxReplicationLagMs: 10_000, galeraWriters: 'one' as const };
const primary = (readOnly = false): NodeObservation => ({ reachable: true, readOnly, galera: undefined, replica: undefined, error: undefined });
const replica = (r: Partial<ReplicaStatus> = {}, readOnly = true): NodeObservation => ({
  reachable: true,
  readOnly,
  galera: undefined,
  replica: { ioRunning: true, sqlRunning: true, lagSeconds: 0, ...r },
  error: undefined,
});
const galera = (g: Partial<GaleraStatus> = {}): NodeObservation => ({
  reachable: true,
  readOnly: false,
  galera: { ready: true, localState: 4, clusterStatus: 'Primary', localIndex: 0, clusterSize: 3, ...g },
  replica: undefined,
  error: undefined,
});
const input = (name: string, observation: NodeObservation | undefined, suspect = false): NodeInput => ({ name, observation, suspect });
const roles = (states: readonly NodeState[]) => Object.fromEntries(states.map((s) => [s.name, `${s.role}/${s.health}`]));
const writers = (states: readonly NodeState[]) => new Set(states.filter((s) => s.role === 'writer').map((s) => s.name));

t.test('a replica promoted with STOP SLAVE + read_only=0 (slave status kept, no RESET SLAVE ALL) becomes the writer', async (t) => {
  // MariaDB keeps the SHOW SLAVE STATUS row after STOP SLAVE; the issue says the writer is "the
  // node with read_only = OFF". Here the only writable node is ignored: writes wait forever.
  const states = decideTopology(
    [input('old', { ...primary(), reachable: false, error: new Error('down') }), input('promoted', replica({ ioRunning: false, sqlRunning: false, lagSeconds: null }, false)), input('r2', replica({ ioRunning: false, lagSeconds: null }))],
    new Set(['old']),
    options,
  );
  t.same([...writers(states)], ['promoted'], `the only writable node writes (got ${JSON.stringify(roles(states))})`);
});

t.test('primary crashed, failover not done yet: replicas whose IO thread reconnects (SQL applied) take reads as a last resort', async (t) => {
  // After kill -9 of the primary the IO thread shows Connecting (ioRunning false) and
  // Seconds_Behind_Master is NULL; the data is a consistent snapshot. The issue: "reads never fail".
  const states = decideTopology(
    [input('p', { ...primary(), reachable: false, error: new Error('ECONNREFUSED') }), input('r1', replica({ ioRunning: false, lagSeconds: null })), input('r2', replica({ ioRunning: false, lagSeconds: null }))],
    new Set(['p']),
    options,
  );
  t.not(candidatesFor('reader', states).length, 0, `some node takes reads (got ${JSON.stringify(roles(states))})`);
});

t.test('a suspect blip on the writer never hands writes to an unfenced writable old primary', async (t) => {
  // After a failover the old primary came back writable (not fenced yet); the cluster rightly
  // keeps the new writer ("previous writer kept")... until the new writer is suspect once.
  let prev = new Set(['new']);
  const step = (newSuspect: boolean) => {
    const states = decideTopology([input('old', primary()), input('new', primary(), newSuspect)], prev, options);
    // As the cluster keeps them: the last writers known, through a spell with none.
    const now = writers(states);
    if (now.size !== 0) prev = now;
    return states;
  };
  t.same([...writers(step(false))], ['new'], 'new primary writes');
  t.same([...writers(step(true))], [], 'while the writer is re-checked, no other node takes its place'); // a 1290 from secure_file_priv, a 1792 after SET SESSION transaction_read_only, ...
  t.same([...writers(step(false))], ['new'], 'back to the new primary once its check is fine (got: the old one, split brain)');
});

t.test('Galera: a node resumed after SIGSTOP with a stale Synced view takes nothing until it is in the newest configuration, the others were checked since, and it has applied what they had', async (t) => {
  // prior-art: "The resumed node reports a stale ready=ON, Synced, Primary, size=3 for about 6 s;
  // a write sent to it in that window fails after 6 s with 1180".
  const at = (ms: number, g: Partial<GaleraStatus>): NodeObservation => ({ ...galera(g), at: ms, syncedSince: ms });
  const returning = (name: string, o: NodeObservation): NodeInput => ({ name, observation: o, suspect: false, previousHealth: 'down' });
  const stale = decideTopology(
    [input('g1', at(1_000, { localIndex: 0, clusterSize: 2, confId: 7 })), input('g2', at(1_000, { localIndex: 1, clusterSize: 2, confId: 7 })), returning('g3', at(1_100, { localIndex: 2, clusterSize: 3, confId: 6 }))],
    new Set(['g1']),
    options,
  );
  t.equal(stale[2]!.role, 'none', `g3, behind the newest configuration, takes nothing (got ${JSON.stringify(roles(stale))})`);
  const unconfirmed = decideTopology(
    [input('g1', at(1_000, { localIndex: 0, confId: 8 })), input('g2', at(1_000, { localIndex: 1, confId: 8 })), returning('g3', at(1_100, { localIndex: 2, confId: 8 }))],
    new Set(['g1']),
    options,
  );
  t.equal(unconfirmed[2]!.role, 'none', 'not before the others were checked since it came back');
  // Its next check, begun after the others' last answers: now comparable with them.
  const checkedAgain = (o: NodeObservation): NodeObservation => ({ ...o, askedAt: 1_290, at: 1_300, syncedSince: 1_100 });
  const peersAt = (lastCommitted: number) => [
    input('g1', at(1_200, { localIndex: 0, confId: 8, lastCommitted })),
    input('g2', at(1_200, { localIndex: 1, confId: 8, lastCommitted })),
  ];
  const notComparable = decideTopology([...peersAt(500), returning('g3', { ...at(1_150, { localIndex: 2, confId: 8, lastCommitted: 500 }), askedAt: 1_150, syncedSince: 1_100 })], new Set(['g1']), options);
  t.equal(notComparable[2]!.role, 'none', 'not on a check begun before the others last answered: their answers may hold writes it had no time to apply');
  const behind = decideTopology([...peersAt(500), returning('g3', checkedAgain(galera({ localIndex: 2, confId: 8, lastCommitted: 420 })))], new Set(['g1']), options);
  t.same(roles(behind), { g1: 'writer/up', g2: 'reader/up', g3: 'none/notSynced' }, 'Synced in the newest configuration but 80 write sets behind what the others had applied before it was asked: not yet');
  const back = decideTopology([...peersAt(500), returning('g3', checkedAgain(galera({ localIndex: 2, confId: 8, lastCommitted: 505 })))], new Set(['g1']), options);
  t.same(roles(back), { g1: 'writer/up', g2: 'reader/up', g3: 'reader/up' }, 'then it is used again; the writer did not move');
  const stayedUp = decideTopology([...peersAt(500), { ...returning('g3', checkedAgain(galera({ localIndex: 2, confId: 8, lastCommitted: 420 }))), previousHealth: 'up' }], new Set(['g1']), options);
  t.equal(stayedUp[2]!.health, 'up', 'a node that stayed up is judged by its own status alone (a peer answering later is no reason to drop it)');
});

// A fake routed lease: records the statements, answers MASTER_GTID_WAIT with `waited`.
function fakeRouter(node: Partial<NodeState>, waited: unknown, hangOn?: RegExp) {
  const sent: Array<{ sql: string; node: string }> = [];
  let released = 0;
  const leaseOn = (name: string, state: NodeState): RoutedLease => ({
    node: state,
    lease: {
      conn: {
        lastGtid: undefined,
        query: (options: string | { sql: string; timeout?: number }) => {
          // As mysql2 does: a statement with `timeout` rejects when it expires.
          const sql = typeof options === 'string' ? options : options.sql;
          const timeoutMs = typeof options === 'string' ? undefined : options.timeout;
          sent.push({ sql, node: name });
          if (hangOn?.test(sql)) {
            return new Promise((_, reject) => {
              if (timeoutMs !== undefined) setTimeout(() => reject(Object.assign(new Error('Query inactivity timeout'), { code: 'PROTOCOL_SEQUENCE_TIMEOUT' })), timeoutMs);
            });
          }
          if (/MASTER_GTID_WAIT/.test(sql)) return Promise.resolve([[{ waited }], []]);
          return Promise.resolve([[], []]);
        },
        destroy: () => undefined,
      } as never,
      release: () => void released++,
    },
  });
  const readerState: NodeState = { name: 'r', role: 'reader', health: 'up', kind: 'replication', lagSeconds: 0, ...node };
  const writerState: NodeState = { name: 'w', role: 'writer', health: 'up', kind: readerState.kind, lagSeconds: undefined };
  const router = {
    borrow: async (need: 'writer' | 'reader') => (need === 'reader' ? leaseOn(readerState.name, readerState) : leaseOn('w', writerState)),
    log: { debug() {}, info() {}, warn() {}, error() {} } as never,
    statementTimeoutMs: 200,
  };
  return { router, sent, released: () => released };
}

t.test('MASTER_GTID_WAIT returning NULL is not caught up: the read goes to the writer', async (t) => {
  const { router, sent } = fakeRouter({}, null);
  const session = new ClusterSession(router, GtidSet.parse('0-1-42', 'after'), 1_000);
  await session.withConnection(async (conn) => void (await conn.query('SELECT 1')), { readOnly: true });
  const user = sent.find((s) => s.sql === 'SELECT 1')!;
  t.equal(user.node, 'w', `the read falls back to the writer (ran on ${user.node})`);
});

t.test('Galera with galeraWriters "all": a session read on a writer node still runs causally', async (t) => {
  // #read skips the wait when node.role === 'writer'; with 'all' (or after the single writer
  // moved) the read may land on another node than the one the write went to.
  const { router, sent } = fakeRouter({ name: 'g2', role: 'writer', kind: 'galera', lagSeconds: undefined }, 0);
  const session = new ClusterSession(router, GtidSet.parse('0-1-42', 'after'), 1_000);
  await session.withConnection(async (conn) => void (await conn.query('SELECT 1')), { readOnly: true });
  t.ok(
    sent.some((s) => /wsrep_sync_wait\s*=\s*1/.test(s.sql)),
    `the read is causal (sent: ${JSON.stringify(sent.map((s) => s.sql))})`,
  );
});

t.test('a causal read whose wsrep_sync_wait reset hangs (frozen node) settles within the statement bound and releases its lease', async (t) => {
  const { router, released } = fakeRouter({ name: 'g2', role: 'reader', kind: 'galera', lagSeconds: undefined }, 0, /SET SESSION wsrep_sync_wait = @/);
  const session = new ClusterSession(router, GtidSet.parse('0-1-42', 'after'), 1_000);
  // fn gives up on its own statement after a bound, as the pool's end-races test 10 allows.
  const read = session.withConnection(async () => 'done', { readOnly: true });
  const outcome = await Promise.race([read.then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(() => r('hung'), 1_500))]);
  t.equal(outcome, 'settled', 'the read settles (the reset is bounded, or left to the pool\'s bounded clean-up)');
  t.equal(released(), 1, 'the lease went back');
});

t.test('GtidSet: domains compare as numbers (0 and 00 are one domain)', async (t) => {
  const set = GtidSet.parse('0-1-5,00-1-9', 'after');
  t.equal(set.toString(), '0-1-9', `one GTID per domain (got ${set.toString()})`);
});

t.test('cluster durations are capped at 2^31-1 ms (Node would fire a longer timer after 1 ms: a check storm)', async (t) => {
  for (const [field, value] of [['monitorInterval', 2 ** 31], ['monitorBackoffMax', 3e9], ['readYourWritesTimeout', 1e15], ['maxReplicationLag', 1e300]] as const) {
    const extra = field === 'monitorInterval' ? { monitorBackoffMax: 2 ** 32 } : {};
    let err: unknown;
    try {
      resolveClusterConfig({ nodes: ['mysql://u@h/db'], [field]: value, ...extra });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ConfigError, `${field}: ${value} refused`);
  }
});

t.test('nodes given as one URL string: the ConfigError never shows the password', async (t) => {
  const err = (() => {
    try {
      resolveClusterConfig({ nodes: 'mysql://app:S3cretPw@db1/app' as never });
    } catch (e) {
      return e as Error;
    }
    return undefined;
  })();
  t.ok(err instanceof ConfigError, 'refused');
  t.notMatch(err?.message ?? '', /S3cretPw/, `no password in the message: ${err?.message}`);
});

t.test('names: a long host name (default node name) is accepted; a name with a space is refused, naming nodes[i].name', async (t) => {
  const host = 'prod-db-replica-2.c9akciq32xyz.us-east-1.rds.amazonaws.com';
  let err: unknown;
  let cluster: ReturnType<typeof createCluster> | undefined;
  try {
    cluster = createCluster({ nodes: [`mysql://u@${host}:3306/db`], logger: { debug() {}, info() {}, warn() {}, error() {} } });
  } catch (e) {
    err = e;
  }
  t.teardown(() => cluster?.end());
  t.equal(err, undefined, `a valid node URL with no name is accepted (got ${(err as Error)?.message})`);

  let err2: ConfigError | undefined;
  try {
    createCluster({ nodes: [{ name: 'db 1', host: '127.0.0.1' }], logger: { debug() {}, info() {}, warn() {}, error() {} } });
  } catch (e) {
    err2 = e as ConfigError;
  }
  t.equal(err2?.field, 'nodes[0].name', `the error names nodes[0].name (got field ${err2?.field}: ${err2?.message})`);

  let err3: unknown;
  try {
    resolveClusterConfig({ nodes: ['mysql://u@h/db'], name: 42 as never });
  } catch (e) {
    err3 = e;
  }
  t.ok(err3 instanceof ConfigError, 'a non-string cluster name is refused');
});
