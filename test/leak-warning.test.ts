// leakWarningAfter: a borrow held longer logs one warning carrying the borrower's stack, and
// one info line when the connection finally comes back. Off by default; a short borrow logs
// nothing; the timer never keeps the process alive.
import t, { type Test } from 'tap';
import { createPool } from '../lib/index.js';
import { runChild } from './helpers/child.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionId } from './helpers/sql.js';

const server = await startServer(t);

const WARN = 'connection held longer than leakWarningAfter';
const RETURNED = 'leaked connection returned';
const THIS_FILE = 'leak-warning.test';


function newPool(t: Test, extra: Record<string, unknown> = {}) {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 2, logger: log.logger, ...extra });
  t.teardown(() => pool.end());
  return { pool, log, leakLines: () => log.lines.filter((l) => l.msg === WARN || l.msg === RETURNED) };
}

t.test('held 300 ms with leakWarningAfter 100: one warning with the stack, one info on return', async (t) => {
  const { pool, log, leakLines } = newPool(t, { leakWarningAfter: 100 });
  let warningsWhileHeld = -1;
  const id = await pool.withConnection(async (conn) => {
    const id = await connectionId(conn);
    await sleep(300);
    warningsWhileHeld = log.find(WARN).length;
    return id;
  });
  t.equal(warningsWhileHeld, 1, 'the warning came while the connection was still held');

  const warns = log.find(WARN);
  t.equal(warns.length, 1, 'exactly one warning, not one per period');
  const warn = warns[0]!;
  t.equal(warn.level, 40, 'at warn');
  t.equal(warn.connId, id, 'connId is the CONNECTION_ID');
  t.ok(typeof warn.heldMs === 'number' && warn.heldMs >= 100 && warn.heldMs < 300, `heldMs when it fired (${String(warn.heldMs)})`);
  t.equal(warn.leakWarningAfterMs, 100);
  t.type(warn.stack, 'string');
  t.match(warn.stack, THIS_FILE, "the stack points at the borrower's code");

  const returned = log.find(RETURNED);
  t.equal(returned.length, 1, 'one info line on return');
  t.equal(returned[0]!.level, 30, 'at info');
  t.equal(returned[0]!.connId, id);
  t.ok(typeof returned[0]!.heldMs === 'number' && returned[0]!.heldMs >= 300, `heldMs in total (${String(returned[0]!.heldMs)})`);
  t.same(leakLines().map((l) => l.msg), [WARN, RETURNED], 'in that order, nothing else');
});

t.test('a borrow shorter than leakWarningAfter logs nothing', async (t) => {
  const { pool, leakLines } = newPool(t, { leakWarningAfter: 100 });
  for (let i = 0; i < 5; i++) await pool.withConnection((conn) => conn.query('SELECT 1'));
  await sleep(250); // long past the threshold: a timer left running would have fired by now
  t.same(leakLines(), []);
});

t.test('leakWarningAfter absent: a long hold logs nothing', async (t) => {
  const { pool, leakLines } = newPool(t);
  await pool.withConnection(async (conn) => {
    await conn.query('SELECT 1');
    await sleep(300);
  });
  t.same(leakLines(), []);
});

t.test('withTransaction held too long: warned, with the stack', async (t) => {
  const { pool, log } = newPool(t, { leakWarningAfter: 100 });
  await pool.withTransaction(async (conn) => {
    await conn.query('SELECT 1');
    await sleep(300);
  });
  t.equal(log.find(WARN).length, 1);
  t.match(log.find(WARN)[0]?.stack, THIS_FILE);
  t.equal(log.find(RETURNED).length, 1);
});

t.test('a fire-and-forget borrow (the typical leak): the stack still names the borrowing code', async (t) => {
  // The leak worth finding is the borrow nobody awaits. Its stack must come from the call
  // itself: once withConnection has awaited the pool, no async frame leads back to it.
  // (Fails at the time of writing: the stack is captured after `await this.acquire()`.)
  const { pool, log } = newPool(t, { leakWarningAfter: 100 });
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  function startBackgroundJobThatForgets(): void {
    void pool.withConnection(async (conn) => {
      await conn.query('SELECT 1');
      await held;
    });
  }
  startBackgroundJobThatForgets();
  await sleep(300);
  release();
  await sleep(50);
  const warns = log.find(WARN);
  t.equal(warns.length, 1, 'warned');
  t.match(warns[0]?.stack, 'startBackgroundJobThatForgets', 'the stack names the function that borrowed');
  t.match(warns[0]?.stack, THIS_FILE, 'and this file');
});

t.test('the leak timer does not keep the process alive', async (t) => {
  // A borrow that never returns keeps its socket (and so the process) alive anyway, so the
  // timer is checked on its own: a child arms one for 60 s and must exit at once. The kill
  // limit counts from the child's loading (not Node's start-up) and is far below 60 s.
  const r = await runChild('./leak-timer.ts', [], { runMs: 20_000 });
  t.same(r.lines, [{ step: 'armed', refTimers: 0 }], 'the timer was armed, and is not ref\'ed');
  t.equal(r.timedOut, false, `the child exited by itself, long before the 60 s timer (${r.timedOut ? `killed at the ${r.killedBy} limit` : `${r.runMs} ms after loading`})`);
  t.equal(r.exitCode, 0, 'cleanly');
  if (r.stderr) t.comment(r.stderr.slice(0, 2_000));
});
