// A connection silently dropped by the network (a NAT or firewall forgets the flow, no RST):
// nothing closes, nothing errors, the next round trip just never answers. mysql2 has no
// timeout of its own, so a query on such a connection hangs.
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { createPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { startRelay } from './helpers/relay.js';
import { throughRelay, within } from './helpers/settle.js';

const server = await startServer(t);

const ID_SQL = 'SELECT CONNECTION_ID() AS id';
type IdRow = RowDataPacket & { id: number };



t.test('relay: blackhole stops existing pairs only', async (t) => {
  const relay = await startRelay(server.host, server.port);
  t.teardown(() => relay.close());
  const before = await mysql.createConnection(throughRelay(server.url, relay));
  before.on('error', () => {});
  await before.query('SELECT 1');
  relay.blackhole();
  const after = await mysql.createConnection(throughRelay(server.url, relay));
  t.teardown(() => after.end());
  t.same((await after.query<any[]>('SELECT 1 AS one'))[0], [{ one: 1 }], 'a new connection is forwarded');
  t.equal(relay.pairs.length, 2);
  t.equal(relay.pairs[0]?.blackholed, true);
  t.equal(relay.pairs[1]?.blackholed, false);
  t.equal(relay.pairs[0]?.client.destroyed, false, 'the blackholed pair stays open');
  t.equal(relay.pairs[0]?.upstream.destroyed, false);
  const pending = within(before.query('SELECT 1'), 300);
  t.same(await pending, { status: 'pending' }, 'the blackholed connection gets no answer');
  before.destroy();
  t.equal(await relay.pairs[0]!.clientClosed(2_000), true, 'the relay sees the client close a blackholed pair');
});

t.test('fault is real: a mysql2 pool query on a silently dropped connection hangs', async (t) => {
  const relay = await startRelay(server.host, server.port);
  const plain = mysql.createPool({ uri: throughRelay(server.url, relay), connectionLimit: 1 });
  let hung: Promise<unknown> = Promise.resolve();
  t.teardown(async () => {
    await relay.close(); // destroys the silent socket, which fails the hung query
    await hung;
    await plain.end();
  });
  await plain.query('SELECT 1');
  relay.blackhole();
  await sleep(150);
  const query = plain.query('SELECT 1');
  hung = query.catch(() => {});
  t.same(await within(query, 3_000), { status: 'pending' }, 'no answer and no error after 3 s');
});

t.test('our pool: the silent connection times out its ping, is torn down, and the query succeeds', async (t) => {
  const pingTimeout = 500;
  const relay = await startRelay(server.host, server.port);
  const log = captureLog();
  const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, connWaitAge: 100, pingTimeout, logger: log.logger });
  t.teardown(async () => {
    await pool.end();
    await relay.close();
  });
  const droppedId = await pool.withConnection(async (c) => (await c.query<IdRow[]>(ID_SQL))[0][0]!.id);
  t.equal(relay.pairs.length, 1, 'one connection so far');
  relay.blackhole();
  await sleep(150); // idle past connWaitAge, so the borrow pings

  const outcome = await within(pool.query<IdRow[]>(ID_SQL), pingTimeout + 5_000);
  t.equal(outcome.status, 'fulfilled', 'the query settled, without error, before pingTimeout + 5 s');
  if (outcome.status !== 'fulfilled') return;
  const [rows] = outcome.value;
  t.not(rows[0]?.id, droppedId, 'on a new connection');
  t.equal(relay.pairs.length, 2, 'made through the relay after the blackhole');

  const evictions = log.find('connection evicted');
  t.equal(evictions.length, 1, 'one eviction');
  t.equal(evictions[0]?.connId, droppedId, 'of the silent connection');
  t.equal(evictions[0]?.reason, 'pingTimeout');
  const stats = pool.stats();
  t.equal(stats.pings, 1);
  t.equal(stats.pingFailures, 1);
  t.same(stats.destroyed, { pingTimeout: 1 });
  t.equal(stats.size, 1);

  t.equal(await relay.pairs[0]!.clientClosed(2_000), true, "the timed-out connection's socket was closed, not left open");
});
