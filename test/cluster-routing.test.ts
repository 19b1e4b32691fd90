// A borrow waiting on a node's pool moves when the node stops being a candidate for it (issue
// 12): two private servers, a writable one and a read-only one (a replica as the cluster sees
// it), node pools of one connection. The reader's only connection is held; a second read waits
// in its pool; a wrong-node error (1290) makes the reader suspect: the waiting read moves to the
// writer at once instead of waiting for the held connection, and the lease it left behind is
// given back when it comes, so nothing stays lent or queued on the reader.
import t from 'tap';
import { createCluster, type PoolConnection } from '../lib/index.js';
import { startServer } from './helpers/mariadb.js';

t.setTimeout(120_000);
const [writer, reader] = await Promise.all([startServer(t), startServer(t)]);
for (const server of [writer, reader]) {
  await server.query("CREATE USER 'app'@'%' IDENTIFIED BY 'apppw'");
  await server.query("GRANT ALL ON test.* TO 'app'@'%'");
  await server.query('CREATE TABLE test.t (id INT PRIMARY KEY)');
}
// read_only does not stop root, hence the app user.
await reader.query('SET GLOBAL read_only = 1');
t.teardown(() => reader.query('SET GLOBAL read_only = 0').catch(() => undefined));
const asApp = (port: number) => `mysql://app:apppw@127.0.0.1:${port}/test`;

const portOf = async (conn: PoolConnection) => ((await conn.query('SELECT @@port AS port')) as unknown as [Array<{ port: number }>])[0][0]!.port;

t.test('a read waiting on a reader that turns suspect moves to the writer; the lease left behind goes back', async (t) => {
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  // A long interval: only the wrong-node error makes the cluster look again.
  const cluster = createCluster({
    nodes: [
      { name: 'w', uri: asApp(writer.port) },
      { name: 'r', uri: asApp(reader.port) },
    ],
    max: 1,
    monitorInterval: 60_000,
    monitorBackoffMax: 60_000,
    acquireTimeout: 20_000,
    logger: silent,
  });
  t.teardown(() => cluster.end());
  await cluster.ready();
  t.same(
    cluster.stats().nodes.map((n) => `${n.name} ${n.role}`),
    ['w writer', 'r reader'],
    'roles found',
  );

  let letGo!: () => void;
  const held = new Promise<void>((resolve) => (letGo = resolve));
  let holderFailed: unknown;
  const holder = cluster.withConnection(
    async (conn) => {
      t.equal(await portOf(conn), reader.port, 'the first read is on the reader');
      await held;
      // The statement that tells the cluster this node is wrong for what it was asked.
      await conn.query('INSERT INTO test.t VALUES (1)').catch((err: unknown) => (holderFailed = err));
    },
    { readOnly: true },
  );
  await until(() => cluster.stats().nodes[1]!.pool.borrowed === 1);
  let movedTo: number | undefined;
  const waiting = cluster.withConnection(async (conn) => (movedTo = await portOf(conn)), { readOnly: true });
  await until(() => cluster.stats().nodes[1]!.pool.waiting === 1);
  t.equal(movedTo, undefined, 'the second read waits in the reader\'s pool');

  letGo();
  await holder;
  t.match(holderFailed, { errno: 1290 }, 'the held connection met 1290 (read-only)');
  await waiting;
  t.equal(movedTo, writer.port, 'the waiting read ran on the writer');
  // The reader is checked again at once: read_only still says reader, so it comes back.
  await until(() => cluster.stats().nodes[1]!.health === 'up');
  await until(() => cluster.stats().nodes[1]!.pool.borrowed === 0 && cluster.stats().nodes[1]!.pool.waiting === 0);
  t.pass('nothing stays lent or queued on the reader');
  t.equal(await cluster.withConnection(portOf, { readOnly: true }), reader.port, 'and it takes reads again');
});

async function until(check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
