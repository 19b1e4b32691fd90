// Smoke tests of the replication harness (helpers/replication.ts), and the facts about that
// topology that a cluster pool (issue 12) must handle. (The Galera harness is exercised by
// cluster-galera.test.ts: isolate, freeze, kill -9 and IST, stop all and start all.)
// - replication: a replica refuses the app user's writes (1290); after a failover the promoted
//   replica takes writes and the other replica follows it; a stopped SQL thread shows as
//   Slave_SQL_Running=No with Seconds_Behind_Master NULL.
import t from 'tap';
import mysql, { type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
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
