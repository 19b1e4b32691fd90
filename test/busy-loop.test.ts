// The Node trap: the server closes idle connections (wait_timeout) while the event loop is
// busy, so the FIN sits unprocessed and a pool that borrows right after lends a dead socket.
import t from 'tap';
import mysql from 'mysql2/promise';
import { createPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t, { waitTimeoutSeconds: 1 });

t.test('fault is real: mysql2 pool lends the dead connection after a busy loop', { skip: !server.canRestart && 'needs wait_timeout=1' }, async (t) => {
  const plain = mysql.createPool({ uri: server.url, connectionLimit: 2 });
  t.teardown(() => plain.end());
  await plain.query('SELECT 1');
  busyWait(2_500);
  await t.rejects(plain.query('SELECT 1'), { code: /ECONNRESET|PROTOCOL_CONNECTION_LOST|EPIPE/ });
});

t.test('withConnection: no error after a busy loop past wait_timeout', { skip: !server.canRestart && 'needs wait_timeout=1' }, async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 2, logger: log.logger });
  t.teardown(() => pool.end());
  const firstId = await pool.withConnection(async (c) => (await c.query<any[]>('SELECT CONNECTION_ID() AS id'))[0][0].id);
  busyWait(2_500);
  const [rows] = await pool.query<any[]>('SELECT CONNECTION_ID() AS id');
  t.not(rows[0].id, firstId, 'a new connection replaced the dead one');
  const evictions = log.find('connection evicted');
  t.equal(evictions.length, 1);
  t.equal(evictions[0]?.connId, firstId);
  t.equal(evictions[0]?.reason, 'pingFailed');
  t.equal(pool.stats().pingFailures, 1);
});
