/**
 * `npm run chaos`: a seeded chaos run against the pool. This process (the orchestrator)
 * starts a private MariaDB (or uses MYSQL_URL, where faults that need a restart or a
 * server-wide setting are left out), creates the schema and the pool's own user, puts a
 * freezable relay between pool and server, and starts the child process that owns the pool
 * and its workload. It then injects the server-side faults of the plan, reads the bank's
 * total as it goes, and after the child has ended the pool checks every invariant and prints
 * the tables. Exit code 0 when every invariant held, 1 when one failed, 2 on a harness error.
 *
 * Usage: npm run chaos -- [--duration <s>] [--seed <n>] [--callers <n>] [--margin <ms>] [--json <file>] [--plan]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startServer, type TestServer } from '../test/helpers/mariadb.js';
import { Admin, ACCOUNTS, CHAOS_DB, finalState, poolConnections, setUpSchema, START_BALANCE, type FinalState, type PoolUser } from './admin.js';
import { BankWatch } from './bank-watch.js';
import { FaultInjector } from './faults.js';
import { judge } from './invariants.js';
import { planFaults, type FaultPlan } from './plan.js';
import type { ChildArgs, ChildLine, ChildResult } from './protocol.js';
import { startChaosRelay } from './relay.js';
import { callTable, errorTable, faultTable, invariantTable, jsonReport } from './report.js';
import { callBoundMs, DEFAULT_MARGIN_MS, END_LIMIT_MS, EXIT_LIMIT_MS, MAX_FREEZE_MS, parseOptions, poolSettingsFor, SERVER_CLEAN_LIMIT_MS, UsageRequested, type RunOptions } from './settings.js';

const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const teardowns: Array<() => unknown> = [];
/** Kills the child on Ctrl-C, before the teardowns stop the server. */
let interrupted = () => undefined as unknown;
const holder = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

/** How the child went, as the orchestrator saw it. */
interface ChildRun {
  result: ChildResult | undefined;
  startedAt: number | undefined;
  endedAt: number | undefined;
  exit: { code: number | null; signal: string | null; afterEndedMs: number | undefined };
  leftOnServer: number[] | undefined;
}

// Compiled, the child is plain JS; run from source (tests), it needs the TypeScript loader.
// CHAOS_CHILD_NODE_OPTIONS adds Node flags to the child only (say, an --import that traces
// where unhandled promises were made).
function spawnChild(args: ChildArgs): ChildProcess {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith('.ts');
  const loader = fromSource ? [`--import=${import.meta.resolve('@tapjs/typescript/import')}`] : [];
  const extra = (process.env.CHAOS_CHILD_NODE_OPTIONS ?? '').split(' ').filter((flag) => flag !== '');
  const script = join(dirname(here), fromSource ? 'child.ts' : 'child.js');
  return spawn(process.execPath, [...loader, ...extra, script, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
}

/** What the orchestrator does as the child reports its progress. */
interface ChildHooks {
  /** The workload started at `at` (epoch ms): the plan's times count from it. */
  started(at: number): void;
  /** end() was called, or the child is gone: no more faults. */
  ending(): void;
  /** end() resolved: which of the pool's connections the server still lists. */
  ended(): Promise<number[] | undefined>;
}

async function runChild(options: RunOptions, args: ChildArgs, hooks: ChildHooks): Promise<ChildRun> {
  const child = spawnChild(args);
  interrupted = () => child.kill('SIGKILL');
  const run: ChildRun = { result: undefined, startedAt: undefined, endedAt: undefined, exit: { code: null, signal: null, afterEndedMs: undefined }, leftOnServer: undefined };
  let cleanCheck: Promise<void> | undefined;
  let exitTimer: NodeJS.Timeout | undefined;
  // Nothing the child does may outlast this: a hang is killed and reported.
  const hardTimer = setTimeout(() => child.kill('SIGKILL'), options.durationMs + END_LIMIT_MS + 60_000);
  createInterface({ input: child.stderr! }).on('line', (line) => say(`child: ${line}`));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: ChildLine;
    try {
      line = JSON.parse(text) as ChildLine;
    } catch {
      say(`child: ${text}`);
      return;
    }
    if (line.event === 'started') {
      run.startedAt = line.at;
      hooks.started(line.at);
    } else if (line.event === 'ending') {
      hooks.ending();
      say(`end() called ${run.startedAt === undefined ? '' : `at +${line.at - run.startedAt} ms`}`);
    } else if (line.event === 'ended') {
      run.endedAt = line.at;
      say(`end() resolved in ${line.endMs} ms`);
      cleanCheck = hooks.ended().then((left) => void (run.leftOnServer = left));
      // A little past the limit, so a slow exit is measured rather than cut short.
      exitTimer = setTimeout(() => child.kill('SIGKILL'), EXIT_LIMIT_MS + 5_000);
    } else if (line.event === 'endHung') {
      say(`end() has not resolved within ${END_LIMIT_MS} ms`);
    } else if (line.event === 'result') {
      run.result = line;
    }
  });
  await new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      run.exit = { code, signal, afterEndedMs: run.endedAt === undefined ? undefined : Date.now() - run.endedAt };
      hooks.ending();
    });
    child.on('close', () => resolve());
  });
  clearTimeout(hardTimer);
  clearTimeout(exitTimer);
  await cleanCheck;
  return run;
}

/** Waits up to SERVER_CLEAN_LIMIT_MS for the server to list none of the pool's connections. */
async function leftOnServer(admin: Admin, user: PoolUser): Promise<number[] | undefined> {
  const giveUpAt = Date.now() + SERVER_CLEAN_LIMIT_MS;
  let left: number[] | undefined;
  for (;;) {
    left = await poolConnections(admin, user).then((rows) => rows.map((r) => r.id), () => left);
    if ((left !== undefined && left.length === 0) || Date.now() >= giveUpAt) return left;
    await sleep(50);
  }
}

function describeSetup(options: RunOptions, server: TestServer, plan: FaultPlan): void {
  say(`chaos run: seed ${options.seed}, ${options.durationMs / 1_000} s, ${options.callers} callers, plan ${plan.fingerprint}`);
  say(`server: ${server.canRestart ? 'private MariaDB' : 'MYSQL_URL (no restart, no server-wide settings)'} ${server.host}:${server.port}`);
  const { profile, settings } = poolSettingsFor(options.seed);
  say(`pool (${profile} profile): ${JSON.stringify(settings)}`);
  say(
    `bound per call: acquireTimeout + pingTimeout + longest freeze (${MAX_FREEZE_MS}) + margin (${options.marginMs}) = ${callBoundMs(options.marginMs, [])} ms, ` +
      `plus per deliberate pause: the pause + pingTimeout + acquireTimeout`,
  );
}

async function main(options: RunOptions): Promise<number> {
  if (options.planOnly) {
    process.stdout.write(`${JSON.stringify(planFaults(options.seed, options.durationMs, !process.env.MYSQL_URL), null, 2)}\n`);
    return 0;
  }
  const server = await startServer(holder);
  const admin = new Admin(server.url);
  const watchAdmin = new Admin(server.url);
  teardowns.push(() => admin.close(), () => watchAdmin.close());
  const poolUser = await setUpSchema(admin, server.url);
  const [globals] = await admin.query<Array<{ w: number; m: number }>>('SELECT @@GLOBAL.wait_timeout AS w, @@GLOBAL.max_connections AS m');
  const relay = await startChaosRelay(server.host, server.port);
  teardowns.push(() => relay.close());
  const plan = planFaults(options.seed, options.durationMs, server.canRestart);
  describeSetup(options, server, plan);

  const injector = new FaultInjector({ server, admin, relay, poolUser, seed: options.seed, waitTimeoutSeconds: Number(globals!.w), maxConnections: Number(globals!.m) });
  const bank = new BankWatch(watchAdmin, ACCOUNTS * START_BALANCE, 250);
  let injecting: Promise<void> = Promise.resolve();
  const url = `mysql://${encodeURIComponent(poolUser.user)}:${encodeURIComponent(poolUser.password)}@${relay.host}:${relay.port}/${CHAOS_DB}`;
  const args: ChildArgs = { url, seed: options.seed, durationMs: options.durationMs, callers: options.callers, marginMs: options.marginMs, canRestart: server.canRestart };
  const run = await runChild(options, args, {
    started: (at) => {
      // The stall KILLs run in a lane of their own, so a long fault never delays them past their stall.
      injecting = Promise.all([injector.run(plan.server, at, 'server'), injector.run(plan.stallKills, at, 'stall')]).then(() => undefined);
      bank.start();
    },
    ending: () => injector.stop(),
    ended: async () => {
      await injecting; // a fault still under way finishes (and restores what it changed) first
      return leftOnServer(admin, poolUser);
    },
  });
  injector.stop();
  await injecting;
  const readings = await bank.stop();
  let final: FinalState | undefined;
  try {
    final = await finalState(admin);
  } catch (err) {
    say(`could not read the final state: ${(err as Error).message}`);
  }

  const { invariants, losses } = judge({ child: run.result, exit: run.exit, faults: injector.records, bank: readings, final, leftOnServer: run.leftOnServer, originAt: run.startedAt });
  const held = invariants.every((i) => i.held);
  const print = (text: string) => process.stdout.write(`${text}\n`);
  print(`\nFaults (seed ${options.seed}, plan ${plan.fingerprint})\n${faultTable(plan, injector.records, run.result)}`);
  if (run.result) {
    print(`\nCalls\n${callTable(run.result)}`);
    print(`\nRejections by code ("first stmt": before any statement of the borrow succeeded)\n${errorTable(run.result)}`);
    print(`\nPool: ${JSON.stringify(run.result.poolStats)}\nPool warnings: ${JSON.stringify(run.result.poolWarnings)}`);
  }
  print(`\nInvariants\n${invariantTable(invariants)}`);
  const margin = options.marginMs === DEFAULT_MARGIN_MS ? '' : ` --margin ${options.marginMs}`;
  const reproduce = `npm run chaos -- --seed ${options.seed} --duration ${options.durationMs / 1_000} --callers ${options.callers}${margin}`;
  print(held ? `\nAll invariants held (seed ${options.seed}).` : `\nFAILED with seed ${options.seed}. Reproduce: ${reproduce}`);

  if (options.jsonPath !== undefined) {
    const report = jsonReport({ options, plan, reproduce, held, originAt: run.startedAt, faults: injector.records, bank: readings, losses, invariants, child: run.result });
    writeFileSync(options.jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  }
  return held ? 0 : 1;
}

let options: RunOptions;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  say((err as Error).message);
  process.exit(err instanceof UsageRequested ? 0 : 2);
}
// Ctrl-C: the private server runs in its own session and would outlive us; stop it.
let tornDown: Promise<void> | undefined;
const tearDown = () =>
  (tornDown ??= (async () => {
    for (const fn of teardowns.reverse()) await fn();
  })());
process.once('SIGINT', () => {
  interrupted();
  void tearDown().finally(() => process.exit(130));
});
let exitCode = 2;
try {
  exitCode = await main(options);
} catch (err) {
  say(`chaos harness error (seed ${options.seed}): ${(err as Error).stack ?? String(err)}`);
} finally {
  await tearDown();
}
process.exitCode = exitCode;
