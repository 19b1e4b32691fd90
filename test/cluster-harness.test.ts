// Smoke tests of the cluster harnesses (helpers/replication.ts, helpers/galera.ts), and the
// facts about both topologies that a cluster pool (issue 12) must handle:
// - replication: a replica refuses the app user's writes (1290); after a failover the promoted
//   replica takes writes and the other replica follows it; a stopped SQL thread shows as
//   Slave_SQL_Running=No with Seconds_Behind_Master NULL;
// - Galera: a node cut off from the cluster still answers SELECT 1 and COM_PING, while every
//   table access fails with 1047, so a ping cannot see a Galera node that left the cluster.
import t from 'tap';
import mysql, { type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import { startGalera } from './helpers/galera.js';
import { startReplication } from './helpers/replication.js';

t.setTimeout(600_000);

type Row = RowDataPacket & { id: number; v: string };

/** Runs one statement as `url`'s user (the app user) on a fresh connection. */
async function asApp<T>(url: string, sql: string, values?: unknown[]): Promise<T> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 20_000 });
  try {
    const [rows] = await conn.query(sql, values);
    return rows as T;
  } finally {
    conn.destroy();
  }
}

/** A read as the app user that first waits until the Galera node applied all earlier writes. */
async function readSynced(url: string, sql: string): Promise<string[]> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 20_000 });
  try {
    await conn.query('SET SESSION wsrep_sync_wait = 1');
    const [rows] = await conn.query<Row[]>(sql);
    return rows.map((x) => x.v);
  } finally {
    conn.destroy();
  }
}

t.test('replication: primary + 2 replicas', async (t) => {
  const r = await startReplication(t);
  t.comment(`replication up in ${r.timings.start} ms`);
  const [primary, replica1, replica2] = r.nodes;

  await t.test('all replicas replicate; the app user is not root', async (t) => {
    for (const node of [replica1, replica2]) {
      const st = await r.slaveStatus(node);
      t.equal(st?.Slave_IO_Running, 'Yes', `${node.name} IO thread`);
      t.equal(st?.Slave_SQL_Running, 'Yes', `${node.name} SQL thread`);
      t.equal(st?.Using_Gtid, 'Slave_Pos', `${node.name} uses GTID`);
      t.equal(st?.Master_Port, primary.port, `${node.name} follows the primary`);
      const [{ ro }] = await node.query<Array<{ ro: number }>>('SELECT @@GLOBAL.read_only AS ro');
      t.equal(Number(ro), 1, `${node.name} is read-only`);
    }
    const [{ u }] = await asApp<Array<{ u: string }>>(primary.url, 'SELECT CURRENT_USER() AS u');
    t.equal(u, 'app@%', 'the app user connects as app@%');
  });

  await t.test('a write on the primary is readable on both replicas', async (t) => {
    await asApp(primary.url, 'CREATE TABLE kv (id INT PRIMARY KEY, v VARCHAR(20))');
    await asApp(primary.url, "INSERT INTO kv VALUES (1, 'one')");
    for (const node of [replica1, replica2]) {
      await r.waitReplicated(node);
      const rows = await asApp<Row[]>(node.url, 'SELECT v FROM kv WHERE id = 1');
      t.same(rows.map((x) => x.v), ['one'], `read on ${node.name}`);
    }
  });

  await t.test('the app user gets 1290 writing to a read-only node', async (t) => {
    await t.rejects(asApp(replica1.url, "INSERT INTO kv VALUES (99, 'no')"), { errno: 1290, code: 'ER_OPTION_PREVENTS_STATEMENT' });
    // setReadOnly on the primary: the same error there, and gone again after.
    await r.setReadOnly(primary, true);
    await t.rejects(asApp(primary.url, "INSERT INTO kv VALUES (99, 'no')"), { errno: 1290, code: 'ER_OPTION_PREVENTS_STATEMENT' });
    await r.setReadOnly(primary, false);
    const res = await asApp<ResultSetHeader>(primary.url, "INSERT INTO kv VALUES (2, 'two')");
    t.equal(res.affectedRows, 1, 'writable again');
  });

  await t.test('a stopped SQL thread: Slave_SQL_Running=No, Seconds_Behind_Master NULL, reads are stale', async (t) => {
    await r.stopSqlThread(replica2);
    await asApp(primary.url, "INSERT INTO kv VALUES (3, 'three')");
    await r.waitReplicated(replica1);
    const st = await r.slaveStatus(replica2);
    t.equal(st?.Slave_SQL_Running, 'No', 'Slave_SQL_Running=No');
    t.equal(st?.Slave_IO_Running, 'Yes', 'still receiving');
    t.equal(st?.Seconds_Behind_Master, null, 'Seconds_Behind_Master is NULL, not a number');
    // The app user may read the lag too (SLAVE MONITOR).
    const [appView] = await asApp<Array<{ Seconds_Behind_Master: number | null }>>(replica2.url, 'SHOW SLAVE STATUS');
    t.equal(appView?.Seconds_Behind_Master, null, 'as the app user sees it');
    t.same(await asApp<Row[]>(replica2.url, 'SELECT v FROM kv WHERE id = 3'), [], 'the write is not on replica2 yet');
    await t.rejects(r.waitReplicated(replica2, { timeoutMs: 500 }), /did not apply/, 'MASTER_GTID_WAIT gives up');
    await r.startSqlThread(replica2);
    await r.waitReplicated(replica2);
    t.same((await asApp<Row[]>(replica2.url, 'SELECT v FROM kv WHERE id = 3')).map((x) => x.v), ['three'], 'caught up');
  });

  await t.test('freeze/thaw and stop/start a replica', async (t) => {
    r.freeze(replica1);
    t.equal(replica1.state, 'frozen', 'replica1 frozen');
    await t.rejects(mysql.createConnection({ uri: replica1.url, connectTimeout: 500 }), { code: 'ETIMEDOUT' }, 'a frozen node answers nothing');
    r.thaw(replica1);
    await r.stop(replica1);
    t.equal(replica1.state, 'down', 'replica1 stopped');
    await t.rejects(asApp(replica1.url, 'SELECT 1'), { code: 'ECONNREFUSED' }, 'a stopped node refuses connections');
    await asApp(primary.url, "INSERT INTO kv VALUES (4, 'four')");
    await r.start(replica1);
    await r.waitReplicated(replica1);
    t.same((await asApp<Row[]>(replica1.url, 'SELECT v FROM kv WHERE id = 4')).map((x) => x.v), ['four'], 'resumed replicating by itself');
  });

  await t.test('failover: kill -9 the primary, promote replica1, repoint replica2; the old primary rejoins', async (t) => {
    const began = Date.now();
    await r.kill9(primary);
    t.equal(primary.state, 'down', 'the primary is gone');
    await r.promote(replica1);
    await r.repoint(replica2, replica1);
    t.comment(`failover took ${Date.now() - began} ms`);
    t.equal(r.primary, replica1, 'the harness knows the new primary');
    const res = await asApp<ResultSetHeader>(replica1.url, "INSERT INTO kv VALUES (5, 'five')");
    t.equal(res.affectedRows, 1, 'the promoted replica takes writes');
    await r.waitReplicated(replica2);
    t.same((await asApp<Row[]>(replica2.url, 'SELECT v FROM kv WHERE id = 5')).map((x) => x.v), ['five'], 'and replica2 follows it');
    t.equal((await r.slaveStatus(replica2))?.Master_Port, replica1.port, 'replica2 replicates from replica1');
    t.equal(await r.slaveStatus(replica1), undefined, 'replica1 is no replica any more');

    // The crashed primary comes back writable (its last setting): a second writer until demoted.
    await r.start(primary);
    const [{ ro }] = await primary.query<Array<{ ro: number }>>('SELECT @@GLOBAL.read_only AS ro');
    t.equal(Number(ro), 0, 'the old primary restarts writable');
    await r.setReadOnly(primary, true);
    await r.repoint(primary, replica1); // current_pos: it was primary
    await r.waitReplicated(primary);
    t.same((await asApp<Row[]>(primary.url, 'SELECT v FROM kv ORDER BY id')).map((x) => x.v), ['one', 'two', 'three', 'four', 'five'], 'the old primary caught up');
    t.equal((await r.slaveStatus(primary))?.Using_Gtid, 'Current_Pos', 'the old primary rejoined with current_pos');
    await t.rejects(asApp(primary.url, "INSERT INTO kv VALUES (99, 'no')"), { errno: 1290, code: 'ER_OPTION_PREVENTS_STATEMENT' }, 'and refuses writes now');
  });
});

t.test('galera: three nodes', async (t) => {
  const g = await startGalera(t);
  t.comment(`galera up in ${g.timings.start} ms (${JSON.stringify(g.timings)})`);
  const [node1, node2, node3] = g.nodes;

  await t.test('all three are Synced in one Primary component', async (t) => {
    const indexes = new Set<number>();
    for (const node of g.nodes) {
      const s = await g.status(node);
      t.match(s, { ready: true, localState: 4, clusterStatus: 'Primary', clusterSize: 3 }, node.name);
      indexes.add(s.localIndex);
    }
    t.same([...indexes].sort(), [0, 1, 2], 'distinct wsrep_local_index');
  });

  await t.test('a write on node1 is visible on node2 and node3', async (t) => {
    await asApp(node1.url, 'CREATE TABLE kv (id INT PRIMARY KEY, v VARCHAR(20))');
    await asApp(node1.url, "INSERT INTO kv VALUES (1, 'one')");
    for (const node of [node2, node3]) {
      t.same(await readSynced(node.url, 'SELECT v FROM kv WHERE id = 1'), ['one'], `read on ${node.name}`);
    }
  });

  await t.test('isolated node3: SELECT 1 and COM_PING succeed, table reads fail with 1047; rejoin syncs it', async (t) => {
    await g.isolate(node3);
    const s = await g.waitStatus(node3, (s) => !s.ready, 'wsrep_ready=OFF');
    t.match(s, { ready: false, clusterStatus: 'non-Primary' }, 'node3 left the cluster');
    await g.waitSynced(node1, { size: 2 });
    const conn = await mysql.createConnection({ uri: node3.url, connectTimeout: 20_000 });
    t.teardown(() => conn.destroy());
    const [one] = await conn.query<RowDataPacket[]>('SELECT 1 AS one');
    t.same(one, [{ one: 1 }], 'SELECT 1 succeeds');
    await t.resolves(conn.ping(), 'COM_PING succeeds');
    await t.rejects(conn.query('SELECT v FROM kv'), { errno: 1047, code: 'ER_UNKNOWN_COM_ERROR' }, 'a table read fails with 1047');
    await t.rejects(conn.query("INSERT INTO kv VALUES (9, 'nine')"), { errno: 1047, code: 'ER_UNKNOWN_COM_ERROR' }, 'so does a write');
    const [status] = await conn.query<RowDataPacket[]>("SHOW STATUS LIKE 'wsrep_ready'");
    t.same(status, [{ Variable_name: 'wsrep_ready', Value: 'OFF' }], 'the app user can see why');
    // Meanwhile the other two carry on.
    await asApp(node1.url, "INSERT INTO kv VALUES (2, 'two')");
    await g.rejoin(node3);
    t.match(await g.status(node3), { ready: true, localState: 4, clusterStatus: 'Primary', clusterSize: 3 }, 'Synced again');
    t.same(await readSynced(node3.url, 'SELECT v FROM kv ORDER BY id'), ['one', 'two'], 'with the write it missed');
  });

  await t.test('kill -9 node2 and restart it (recover, then IST)', async (t) => {
    await g.kill9(node2);
    await g.waitSynced(node1, { size: 2 });
    await asApp(node1.url, "INSERT INTO kv VALUES (3, 'three')");
    await g.restart(node2);
    t.comment(`restart after kill -9: ${g.timings['restart node2']} ms`);
    t.match(await g.status(node2), { ready: true, localState: 4, clusterSize: 3 }, 'node2 Synced again');
    t.same(await readSynced(node2.url, 'SELECT v FROM kv WHERE id = 3'), ['three'], 'with the write it missed (IST)');
  });

  await t.test('freeze and thaw node3: the others go on without it, it comes back', async (t) => {
    g.freeze(node3);
    await g.waitSynced(node1, { size: 2 });
    await asApp(node1.url, "INSERT INTO kv VALUES (4, 'four')");
    g.thaw(node3);
    await g.waitSynced(node3, { size: 3 });
    t.same(await readSynced(node3.url, 'SELECT v FROM kv WHERE id = 4'), ['four'], 'node3 has the write it missed while frozen');
  });

  await t.test('stop all and start all again (bootstrap from the safe_to_bootstrap node)', async (t) => {
    await g.stopAll();
    for (const node of g.nodes) t.equal(node.state, 'down', `${node.name} down`);
    await g.startAll();
    t.comment(`stopAll: ${g.timings.stopAll} ms, startAll: ${g.timings.startAll} ms`);
    for (const node of g.nodes) t.match(await g.status(node), { ready: true, localState: 4, clusterSize: 3 }, node.name);
    t.same(await readSynced(node2.url, 'SELECT v FROM kv ORDER BY id'), ['one', 'two', 'three', 'four'], 'nothing lost');
  });
});
