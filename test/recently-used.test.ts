// A connection used moments ago (idle well under connWaitAge, so no ping is due) that the
// server closes while the event loop is blocked: KILL, restart, failover. Its FIN is still
// unread when the borrow decides. The loop watch notices the stall and lets the loop poll
// once before trusting the connection: no round trip, no error for the user.
import t from 'tap';
import type { RowDataPacket } from 'mysql2/promise';
import mysql from 'mysql2/promise';
import { createPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t);

t.test('fault is real: mysql2 pool lends a just-used connection killed while the loop was busy', async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 1 });
  t.teardown(() => plain.end());
  const [rows] = await plain.query<Array<RowDataPacket & { id: number }>>('SELECT CONNECTION_ID() AS id');
  server.killSync([rows[0]!.id]);
  busyWait(200);
  await t.rejects(plain.query('SELECT 1'), { code: /PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE/ });
});

t.test('default connWaitAge: a connection killed while the loop is busy is not lent', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  const id = await pool.withConnection(async (c) => (await c.query<Array<RowDataPacket & { id: number }>>('SELECT CONNECTION_ID() AS id'))[0][0]!.id);
  const pingsBefore = pool.stats().pings;
  server.killSync([id]);
  busyWait(200);
  await t.resolves(pool.query('SELECT 1'), 'the user sees no error');
  t.equal(log.find('connection evicted')[0]?.connId, id, 'the killed connection was evicted');
  t.equal(pool.stats().pings, pingsBefore, 'found without a round trip');
  t.ok(pool.stats().loopStalls > 0, 'the stall was noticed');
});

t.test('default connWaitAge: a connection from before a restart is not lent', { skip: !server.canRestart && 'needs a private server' }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  await pool.query('SELECT 1');
  server.stopSync();
  server.startSync();
  await t.resolves(pool.query('SELECT 1'), 'the user sees no error');
  t.equal(log.find('connection evicted').length, 1, 'the pre-restart connection was evicted');
});

t.test('inside withConnection: the next statement after a stall runs on a new connection', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, logger: log.logger });
  t.teardown(() => pool.end());
  await pool.query('SELECT 1'); // learn wait_timeout first
  const ids = await pool.withConnection(async (c) => {
    const [first] = await c.query<Array<RowDataPacket & { id: number }>>('SELECT CONNECTION_ID() AS id');
    server.killSync([first[0]!.id]);
    busyWait(200);
    const [second] = await c.query<Array<RowDataPacket & { id: number }>>('SELECT CONNECTION_ID() AS id');
    return [first[0]!.id, second[0]!.id];
  });
  t.not(ids[1], ids[0], 'the statement ran on a replacement, unseen by fn');
  t.equal(log.find('connection replaced before a statement').length, 1);
});
