// The stall decision takes the clock as input; the turn really lets pending I/O through.
import t from 'tap';
import { createServer, connect } from 'node:net';
import { DEFAULTS } from '../lib/config.js';
import { LoopWatch } from '../lib/loop-watch.js';
import { busyWait } from './helpers/mariadb.js';

t.test('stalled() compares the clock with the last turn', async (t) => {
  const watch = new LoopWatch(DEFAULTS.loopTickMs, DEFAULTS.loopStallMs);
  watch.start();
  t.teardown(() => watch.stop());
  const now = Date.now();
  t.equal(watch.stalled(now), false);
  t.equal(watch.stalled(now + DEFAULTS.loopStallMs + 5), true);
  busyWait(DEFAULTS.loopStallMs + 20);
  t.equal(watch.stalled(Date.now()), true, 'a real stall is seen');
  await LoopWatch.turn();
  await new Promise((resolve) => setTimeout(resolve, DEFAULTS.loopTickMs * 2));
  t.equal(watch.stalled(Date.now()), false, 'and forgotten once the loop turns');
});

t.test('turn() delivers a close that arrived during a stall, even from an I/O callback', async (t) => {
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  let ended = false;
  const client = connect(port, '127.0.0.1');
  client.on('end', () => {
    ended = true;
  });
  client.resume();
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  // Now inside an I/O callback's continuation: the server's FIN arrives during the stall.
  busyWait(100);
  t.equal(ended, false, 'the close is still unread after the stall');
  await LoopWatch.turn();
  t.equal(ended, true, 'one turn later it has been read');
  client.destroy();
});
