// A failover behind one address: the name (here a relay) now leads to the new primary, but the
// pooled connections still reach the old one, demoted to read-only. Writes on them fail with
// 1290 for as long as they live. The pool closes a connection that met a wrong-node error when
// it comes back, so the next borrow connects to wherever the address leads now.
import { createServer, connect, type Server, type Socket } from 'node:net';
import t from 'tap';
import genericPool from 'generic-pool';
import mysql from 'mysql2/promise';
import { createPool, type WrongNodeEvent } from '../lib/index.js';
import { startServer, type TestServer } from './helpers/mariadb.js';

const [oldPrimary, newPrimary] = await Promise.all([startServer(t), startServer(t)]);
if (!oldPrimary.canRestart) {
  t.comment('skipped: needs private servers (read_only is set server-wide)');
  process.exit(0);
}

// An application user: root holds READ_ONLY ADMIN, which read_only does not stop.
const APP = { user: 'app', password: 'app-secret' };
for (const server of [oldPrimary, newPrimary]) {
  await server.query(`CREATE USER IF NOT EXISTS '${APP.user}'@'127.0.0.1' IDENTIFIED BY '${APP.password}'`);
  await server.query(`GRANT ALL ON test.* TO '${APP.user}'@'127.0.0.1'`);
  await server.query('CREATE TABLE IF NOT EXISTS test.writes (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(20))');
}

/** One address whose target can be switched, as DNS or a VIP moves in a failover. */
async function switchableAddress(t: { teardown(fn: () => unknown): void }, target: TestServer) {
  let port = target.port;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as { port: number }).port,
    pointTo(next: TestServer) {
      port = next.port;
    },
  };
}

async function failover(address: { pointTo(s: TestServer): void }) {
  await oldPrimary.query('SET GLOBAL read_only = 1');
  address.pointTo(newPrimary);
}

t.afterEach(async () => {
  await oldPrimary.query('SET GLOBAL read_only = 0');
});

const insert = (conn: { query(sql: string, values: unknown[]): Promise<unknown> }, who: string) =>
  conn.query('INSERT INTO test.writes (who) VALUES (?)', [who]);

t.test('the fault is real: a pool that keeps its connections writes to the demoted primary for good', async (t) => {
  const address = await switchableAddress(t, oldPrimary);
  const pool = genericPool.createPool(
    {
      create: () => mysql.createConnection({ host: '127.0.0.1', port: address.port, database: 'test', ...APP }),
      destroy: (conn) => conn.end(),
    },
    { max: 2 },
  );
  t.teardown(async () => {
    await pool.drain();
    await pool.clear();
  });
  // Two connections open before the failover.
  const held = [await pool.acquire(), await pool.acquire()];
  for (const conn of held) await pool.release(conn);
  await failover(address);
  let failures = 0;
  for (let i = 0; i < 6; i++) {
    const conn = await pool.acquire();
    try {
      await insert(conn, 'generic-pool');
    } catch (err) {
      t.equal((err as { errno?: number }).errno, 1290);
      failures++;
    } finally {
      await pool.release(conn);
    }
  }
  t.equal(failures, 6, 'every write failed with 1290: the connections never leave the old primary');
});

t.test('this pool: one write fails with 1290 (it may have been sent), then writes reach the new primary', async (t) => {
  const address = await switchableAddress(t, oldPrimary);
  const pool = createPool({ connection: { host: '127.0.0.1', port: address.port, database: 'test', ...APP }, max: 1, logger: silent() });
  t.teardown(() => pool.end());
  const events: WrongNodeEvent[] = [];
  pool.on('wrongNode', (e) => events.push(e));
  await pool.withConnection((conn) => insert(conn, 'before'));
  await failover(address);
  const newCount = await countOn(newPrimary);
  const err = await pool.withConnection((conn) => insert(conn, 'during')).catch((e: unknown) => e);
  t.equal((err as { errno?: number }).errno, 1290, 'the write that met the demoted primary fails: it is never retried');
  t.equal(events.length, 1);
  t.match(events[0], { pool: 'default', errno: 1290 });
  for (let i = 0; i < 5; i++) await pool.withConnection((conn) => insert(conn, 'after'));
  t.equal((await countOn(newPrimary)) - newCount, 5, 'the next five writes all landed on the new primary');
  t.equal(pool.stats().destroyed.wrongNode, 1, 'the connection to the demoted primary was closed on return');
});

t.test('a read-only error inside a transaction: the transaction rejects and the connection is closed, nothing is retried', async (t) => {
  const address = await switchableAddress(t, oldPrimary);
  const pool = createPool({ connection: { host: '127.0.0.1', port: address.port, database: 'test', ...APP }, max: 1, logger: silent() });
  t.teardown(() => pool.end());
  await pool.withConnection((conn) => conn.query('SELECT 1'));
  await failover(address);
  const err = await pool.withTransaction((conn) => insert(conn, 'tx')).catch((e: unknown) => e);
  t.equal((err as { errno?: number }).errno, 1290);
  t.equal(pool.stats().destroyed.wrongNode, 1);
  const before = await countOn(newPrimary);
  await pool.withTransaction((conn) => insert(conn, 'tx-after'));
  t.equal((await countOn(newPrimary)) - before, 1, 'the next transaction committed on the new primary');
});

async function countOn(server: TestServer): Promise<number> {
  const rows = await server.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM test.writes');
  return Number(rows[0]!.n);
}

function silent() {
  return { debug() {}, info() {}, warn() {}, error() {} };
}
