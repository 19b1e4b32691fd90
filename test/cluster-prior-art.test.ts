// Fault is real (issue 12): what mysql2's own cluster support does when the topology changes
// under it, with 16 concurrent callers.
// - Replication switchover: the primary is demoted (read_only=1) and replica1 promoted. Writes
//   through mysql2's PoolCluster keep going to the demoted primary and fail with 1290, however
//   many fail: query errors never count against a node, and nothing re-reads the roles.
// (Galera's fault, an isolated node that still answers COM_PING, is shown in
// cluster-galera.test.ts on that file's cluster.)
import t from 'tap';
import mysql, { type PoolOptions, type RowDataPacket } from 'mysql2/promise';
import { startReplication } from './helpers/replication.js';

t.setTimeout(300_000);

const CALLERS = 16;

interface Outcome {
  ok: number;
  errnos: Map<number | string, number>;
  /** Failures in the last round of each caller: the cluster has not learnt by then. */
  lastRoundFailures: number;
  ports: Set<number>;
}

/** `CALLERS` callers, each running `op` `rounds` times one after the other; counts the outcomes. */
async function hammer(rounds: number, op: (caller: number, round: number) => Promise<number | undefined>): Promise<Outcome> {
  const outcome: Outcome = { ok: 0, errnos: new Map(), lastRoundFailures: 0, ports: new Set() };
  await Promise.all(
    Array.from({ length: CALLERS }, async (_, caller) => {
      for (let round = 0; round < rounds; round++) {
        try {
          const port = await op(caller, round);
          if (port !== undefined) outcome.ports.add(port);
          outcome.ok++;
        } catch (err) {
          const key = (err as { errno?: number; code?: string }).errno ?? (err as { code?: string }).code ?? String(err);
          outcome.errnos.set(key, (outcome.errnos.get(key) ?? 0) + 1);
          if (round === rounds - 1) outcome.lastRoundFailures++;
        }
      }
    }),
  );
  return outcome;
}

/** mysql2 pool options for a node's app-user URL. */
function poolOptions(url: string, extra: PoolOptions = {}): PoolOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
    connectionLimit: CALLERS,
    ...extra,
  };
}

/** Records the PoolCluster's node events ('remove', 'offline', 'online', 'warn'). */
function watchEvents(cluster: mysql.PoolCluster): string[] {
  const events: string[] = [];
  for (const name of ['remove', 'offline', 'online', 'warn']) cluster.on(name, (arg: unknown) => events.push(`${name}:${arg instanceof Error ? arg.message : String(arg)}`));
  return events;
}

type PortRow = RowDataPacket & { port: number };

t.test('replication switchover: mysql2 PoolCluster keeps writing to the demoted primary (1290)', async (t) => {
  const r = await startReplication(t);
  t.comment(`replication up in ${r.timings.start} ms`);
  const [primary, replica1, replica2] = r.nodes;
  await r.primary.query('CREATE TABLE ledger (id INT AUTO_INCREMENT PRIMARY KEY, caller INT, round INT, port INT)');

  // As mysql2's docs have it: named nodes; writes to 'PRIMARY' by name, or to '*' with the
  // ORDER selector (the first node, the others only if it cannot be reached).
  const clusters = {
    byName: mysql.createPoolCluster(),
    ordered: mysql.createPoolCluster({ defaultSelector: 'ORDER' }),
  };
  const events = { byName: watchEvents(clusters.byName), ordered: watchEvents(clusters.ordered) };
  for (const cluster of Object.values(clusters)) {
    cluster.add('PRIMARY', poolOptions(primary.url));
    cluster.add('REPLICA1', poolOptions(replica1.url));
    cluster.add('REPLICA2', poolOptions(replica2.url));
    t.teardown(() => cluster.end());
  }
  const writers = {
    byName: clusters.byName.of('PRIMARY'),
    ordered: clusters.ordered.of('*'),
  };
  const write = (w: mysql.PoolNamespace) => async (caller: number, round: number) => {
    await w.query('INSERT INTO ledger (caller, round, port) VALUES (?, ?, @@port)', [caller, round]);
    const [rows] = await w.query<PortRow[]>('SELECT @@port AS port');
    return rows[0]!.port;
  };

  await t.test('before: every write succeeds, on the primary', async (t) => {
    for (const [name, w] of Object.entries(writers)) {
      const out = await hammer(3, write(w));
      t.equal(out.ok, CALLERS * 3, `${name}: all writes succeed`);
      t.same([...out.ports], [primary.port], `${name}: all on the primary`);
    }
  });

  await t.test('after a switchover: every write through the PoolCluster fails with 1290, round after round', async (t) => {
    // The switchover an orchestrator does: demote, let the replicas catch up, promote replica1,
    // point the others at it.
    await r.setReadOnly(primary, true);
    await r.waitReplicated(replica1);
    await r.waitReplicated(replica2);
    await r.promote(replica1);
    await r.repoint(replica2, replica1);
    await r.repoint(primary, replica1);
    const [{ n: before }] = await replica1.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM ledger');

    const ROUNDS = 10;
    for (const [name, w] of Object.entries(writers)) {
      const out = await hammer(ROUNDS, write(w));
      t.equal(out.ok, 0, `${name}: no write succeeds`);
      t.same(Object.fromEntries(out.errnos), { 1290: CALLERS * ROUNDS }, `${name}: all ${CALLERS * ROUNDS} fail with 1290 (read-only)`);
      t.equal(out.lastRoundFailures, CALLERS, `${name}: still failing in round ${ROUNDS}, long past removeNodeErrorCount (5)`);
    }
    t.same(events, { byName: [], ordered: [] }, 'the PoolClusters never took the node offline or removed it');

    // The writes fail for their routing alone: the new primary takes the same write.
    const [{ n: after }] = await replica1.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM ledger');
    t.equal(Number(after), Number(before), 'none of them reached the new primary');
    const direct = mysql.createPool(poolOptions(replica1.url));
    t.teardown(() => direct.end());
    await t.resolves(direct.query('INSERT INTO ledger (caller, round, port) VALUES (-1, -1, @@port)'), 'a write straight to replica1 succeeds');
    const [rows] = await writers.byName.query<PortRow[]>('SELECT @@port AS port');
    t.equal(rows[0]!.port, primary.port, "the PoolCluster's 'PRIMARY' is still the demoted node");
  });
});
