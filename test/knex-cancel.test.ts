// `.timeout(ms, { cancel: true })` under Knex on a fresh pool. Each test began as a review
// finding: KILL QUERY went through the pool, so with every connection busy it waited for a
// free one until acquireTimeout while the query ran on; a cluster, or a pool from the other
// build (ESM / CommonJS), could not cancel at all. KILL QUERY now goes on a connection of its
// own to the server of the query's connection, as Knex's own client sends it.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { inspect } from 'node:util';
import t, { type Test } from 'tap';
import knex, { type Knex } from 'knex';
import { createCluster, createPool, type AdapterTarget, type FreshPool } from '../lib/index.js';
import { freshPoolClient } from '../lib/knex/index.js';
import { killQuery } from '../lib/knex/kill-query.js';
import { freshKnex } from './helpers/knex.js';
import { sleep, startServer, type TestServer } from './helpers/mariadb.js';
import { connectionsOf } from './helpers/processlist.js';
import { describeOutcome, until, within } from './helpers/settle.js';

const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };
// A cancel on its own connection takes milliseconds, a second or so on a busy machine; one
// that waits for a pooled connection settles only after acquireTimeout. 8 s tells them apart.
const ACQUIRE_TIMEOUT = 10_000;

/** A user of its own per test, with a password, so the server's count of its connections is the test's alone. */
async function userUrl(name: string, password: string, options = ''): Promise<string> {
  await server.query(`CREATE USER '${name}'@'%' IDENTIFIED BY '${password}' ${options}`);
  await server.query(`GRANT ALL ON test.* TO '${name}'@'%'`);
  return `mysql://${name}:${encodeURIComponent(password)}@${server.host}:${server.port}/test`;
}

/** Resolves once `check()` holds (polled every 50 ms), or rejects after `ms`, naming `what`. */
async function untilServer(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Queries whose text starts with `sql` running on the server now. */
async function running(s: TestServer, sql: string): Promise<number> {
  const rows = await s.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE ?', [`${sql}%`]);
  return Number(rows[0]!.n);
}

/**
 * Runs `n` SLEEP(20) queries at once, each with `.timeout(200, { cancel: true })`, and checks
 * they were cancelled: each rejects with Knex's KnexTimeoutError long before acquireTimeout,
 * and the server runs none of them afterwards.
 */
async function cancelAll(t: Test, db: Knex, n: number): Promise<void> {
  const queries = Array.from({ length: n }, () => db.raw('SELECT SLEEP(20) AS slept').timeout(200, { cancel: true }).then((r) => r));
  const outcome = await within(Promise.allSettled(queries), ACQUIRE_TIMEOUT - 2_000);
  t.equal(outcome.status, 'fulfilled', `all ${n} settled before acquireTimeout (${ACQUIRE_TIMEOUT} ms)`);
  if (outcome.status !== 'fulfilled') return;
  for (const [i, r] of outcome.value.entries()) {
    const reason = r.status === 'rejected' ? (r.reason as Error) : undefined;
    t.equal(reason?.name, 'KnexTimeoutError', `query ${i}: Knex's timeout error (${r.status === 'rejected' ? `${reason?.name}: ${reason?.message}` : 'resolved'})`);
    t.match(reason?.message, /Defined query timeout of 200ms exceeded/, `query ${i}: the cancel succeeded`);
  }
  await untilServer(async () => (await running(server, 'SELECT SLEEP(20)')) === 0, 5_000, 'the queries killed on the server');
}

t.test('every connection busy: each timed-out query is cancelled at once, not after acquireTimeout', async (t) => {
  for (const max of [1, 2]) {
    t.test(`max: ${max}`, async (t) => {
      const user = `knex_cancel_${max}`;
      const { pool, db } = freshKnex(t, await userUrl(user, `pw:${max}/secret`), { max, acquireTimeout: ACQUIRE_TIMEOUT });
      await cancelAll(t, db, max);
      await until(() => pool.stats().borrowed === 0, 5_000, 'the cancelled queries\' connections back');
      t.equal(pool.stats().created, max, 'KILL QUERY borrowed no connection of the pool');
      t.same(pool.stats().destroyed, {}, 'the cancelled connections stay in the pool');
      t.equal(Number((await db.raw('SELECT 2 AS n'))[0][0].n), 2, 'the next query runs');
      await untilServer(async () => (await connectionsOf(server, user)) === pool.stats().size, 5_000, 'the KILL QUERY connections closed');
    });
  }
});

t.test('a cancel that cannot connect fails as Knex says, the busy connection closed, no password in the error', async (t) => {
  const password = 'Very$ecret-pw';
  const url = await userUrl('knex_cancel_limited', password, 'WITH MAX_USER_CONNECTIONS 1');
  const { pool, db } = freshKnex(t, url, { max: 1, acquireTimeout: ACQUIRE_TIMEOUT });
  const outcome = await within(db.raw('SELECT SLEEP(2)').timeout(200, { cancel: true }).then((r) => r), ACQUIRE_TIMEOUT - 2_000);
  t.equal(outcome.status, 'rejected', `rejects before acquireTimeout (${describeOutcome(outcome)})`);
  if (outcome.status !== 'rejected') return;
  const err = outcome.reason as Error & { code?: string; cause?: unknown; timeout?: number };
  t.match(err.message, /cancelling of query failed/, "Knex's message for a failed cancel");
  t.equal(err.code, 'ERR_FRESH_POOL_CONNECT', 'ConnectError: the KILL QUERY connection was refused');
  t.match(err.cause, { errno: 1226, code: 'ER_USER_LIMIT_REACHED' }, "the server's refusal as cause");
  t.equal(err.timeout, 200);
  const shown = inspect(err, { depth: 10, showHidden: true }) + JSON.stringify(err);
  t.notOk(shown.includes(password) || shown.includes(encodeURIComponent(password)), 'the password appears nowhere in the error');
  await until(() => pool.stats().borrowed === 0, ACQUIRE_TIMEOUT, 'the busy connection back');
  t.equal(Object.values(pool.stats().destroyed).reduce((a, b) => a + b, 0), 1, 'the connection still busy with the query was closed, as Knex asks');
  t.equal(Number((await db.raw('SELECT 3 AS n'))[0][0].n), 3, 'the pool lends another');
});

t.test('on a FreshCluster and on cluster.readers(): cancelled on the node the query runs on', async (t) => {
  const cluster = createCluster({ nodes: [{ name: 'db', uri: await userUrl('knex_cancel_cluster', 'cluster-pw') }], max: 1, acquireTimeout: ACQUIRE_TIMEOUT, logger: silent });
  t.teardown(() => cluster.end());
  const writer = knex({ client: freshPoolClient(cluster, { endPoolOnDestroy: false }) });
  const readers = knex({ client: freshPoolClient(cluster.readers(), { endPoolOnDestroy: false }) });
  t.teardown(async () => {
    await writer.destroy();
    await readers.destroy();
  });
  await cancelAll(t, writer, 1);
  await cancelAll(t, readers, 1);
  const node = () => cluster.stats().nodes.find((n) => n.name === 'db')!.pool;
  await until(() => node().borrowed === 0, 5_000, "the node's connection back");
  t.equal(node().created, 1, "KILL QUERY borrowed no connection of the node's pool");
  t.equal(Number((await writer.raw('SELECT 4 AS n'))[0][0].n), 4);
});

t.test('a pool that is not this build\'s FreshPool class (the other build of a dual package): cancel works', async (t) => {
  const pool: FreshPool = createPool({ connection: await userUrl('knex_cancel_dual', 'dual-pw'), max: 1, acquireTimeout: ACQUIRE_TIMEOUT, logger: silent });
  t.teardown(() => pool.end());
  // What a FreshPool of the CommonJS build looks like to the ESM build: the same methods, another class.
  const otherBuild = {
    name: pool.name,
    lease: () => pool.lease(),
    withConnection: (fn: never) => pool.withConnection(fn),
    withTransaction: (fn: never) => pool.withTransaction(fn),
    query: (sql: string, values?: unknown) => pool.query(sql, values as never),
    execute: (sql: string, values?: unknown) => pool.execute(sql, values as never),
    ready: () => pool.ready(),
    end: () => pool.end(),
  } as unknown as AdapterTarget;
  const db = knex({ client: freshPoolClient(otherBuild) });
  t.teardown(() => db.destroy());
  t.equal(db.client.canCancelQuery, true, 'cancel allowed');
  await cancelAll(t, db, 1);
});

t.test('the one-off KILL QUERY connection: bounded, the server\'s errors as they are, never a default server', async (t) => {
  const options = { host: server.host, port: server.port, user: 'root', database: 'test' };
  await t.rejects(killQuery(options, 2 ** 31 - 2), { errno: 1094, code: 'ER_NO_SUCH_THREAD' }, "an unknown thread: the server's own error");

  // A server that accepts and never answers: the connect gives up after connectTimeout.
  const sockets = new Set<Socket>();
  const silentServer = createServer((socket) => void sockets.add(socket));
  await new Promise<void>((resolve) => silentServer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silentServer.close();
  });
  const { port } = silentServer.address() as AddressInfo;
  const outcome = await within(killQuery({ host: '127.0.0.1', port, user: 'root', password: 'hidden-pw', connectTimeout: 300 }, 1), 5_000);
  t.equal(outcome.status, 'rejected', `gave up (${describeOutcome(outcome)})`);
  const err = (outcome as { reason?: Error & { code?: string } }).reason;
  t.equal(err?.code, 'ERR_FRESH_POOL_CONNECT');
  t.match(err?.message, new RegExp(`127\\.0\\.0\\.1:${port} as root to send KILL QUERY 1`));
  t.notOk(inspect(err, { depth: 10, showHidden: true }).includes('hidden-pw'), 'no password in the error');

  // A connection made on a stream object: a second one could only go to mysql2's default server.
  await t.rejects(killQuery({ ...options, stream: new PassThrough() } as never, 1), { code: 'ERR_FRESH_POOL_UNSUPPORTED', operation: 'cancelQuery' });
});
