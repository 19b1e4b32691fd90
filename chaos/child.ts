/**
 * The pool's process: builds the pool under test, runs the seeded workload on `callers`
 * concurrent callers, injects the pool-side faults of the plan (event loop stalls, then
 * end() while work is in flight), and prints JSON lines for the orchestrator (see
 * protocol.ts). After end() resolves it prints its report and must exit by itself: it
 * leaves no handle of its own open, so only the pool could keep it alive.
 *
 * Usage: node child.js '<ChildArgs as JSON>'
 */
import { stat } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { createMysql2Adapter, createPool } from '../lib/index.js';
import { codeOf } from './classify.js';
import { planFaults, type LoopPhase, type PoolFault } from './plan.js';
import type { ChildArgs, ChildLine, JobKind } from './protocol.js';
import { Recorder } from './recorder.js';
import { stream } from './rng.js';
import { callBoundMs, END_LIMIT_MS, HOLDER_CALLERS, poolSettingsFor } from './settings.js';
import { Call, type WorkloadEnv } from './call.js';
import { HOLDER_WEIGHTS, JOBS, MIXED_WEIGHTS } from './workload.js';

const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
const out = (line: ChildLine) => process.stdout.write(`${JSON.stringify(line)}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const recorder = new Recorder();

// Recorded, not fatal: the run goes on, and the verdict reports them (with when they came).
process.on('unhandledRejection', (reason) =>
  recorder.anomaly({ type: 'unhandledRejection', code: codeOf(reason), startedAt: Date.now(), message: String((reason as Error)?.stack ?? reason).slice(0, 500) }),
);
process.on('uncaughtException', (err) =>
  recorder.anomaly({ type: 'uncaughtException', code: codeOf(err), startedAt: Date.now(), message: String(err?.stack ?? err).slice(0, 500) }),
);

// The pool's warnings, counted by message (its info and debug lines are not needed here).
const poolWarnings: Record<string, number> = {};
const logger = pino({ level: 'warn' }, {
  write(line: string) {
    const msg = (JSON.parse(line) as { msg?: string }).msg ?? '?';
    poolWarnings[msg] = (poolWarnings[msg] ?? 0) + 1;
  },
});

const pool = createPool({ connection: args.url, ...poolSettingsFor(args.seed).settings, logger });
pool.on('error', () => undefined); // connect failures: counted in stats() and logged
const adapter = createMysql2Adapter(pool);
try {
  await pool.ready();
} catch (err) {
  process.stderr.write(`chaos child: the pool could not connect: ${(err as Error).message}\n`);
  process.exit(2);
}

const plan = planFaults(args.seed, args.durationMs, args.canRestart);
const startedAt = Date.now();
out({ event: 'started', at: startedAt });

let endCalled = false;
/** Mixed callers start no call before this moment (epoch ms): a lull in the load. */
let lullUntil = 0;
let nextKey = 1;
let nextTransferId = 1;
const inProgress = new Set<{ kind: JobKind; startedAt: number }>();
const dangling = new Set<Promise<unknown>>();

function dangle(statement: PromiseLike<unknown>, key: number | undefined): void {
  recorder.dangling.sent++;
  recorder.dangling.pending++;
  const sentAt = Date.now();
  const settled = Promise.resolve(statement).then(
    () => {
      if (key !== undefined) recorder.writeResolved(key);
      recorder.danglingSettled(undefined, sentAt);
    },
    (err: unknown) => recorder.danglingSettled(err, sentAt),
  );
  dangling.add(settled);
  void settled.finally(() => dangling.delete(settled));
}

async function caller(index: number): Promise<void> {
  const rng = stream(args.seed, `caller-${index}`);
  const weights = (index < HOLDER_CALLERS ? HOLDER_WEIGHTS : MIXED_WEIGHTS) as Record<JobKind, number>;
  const env: WorkloadEnv = {
    pool,
    adapter,
    outcomes: recorder,
    caller: index,
    nextKey: () => nextKey++,
    nextTransferId: () => nextTransferId++,
    dangle,
  };
  await sleep(index * 3); // spread the first calls a little
  while (!endCalled) {
    if (index >= HOLDER_CALLERS && lullUntil > Date.now()) {
      await sleep(lullUntil - Date.now());
      continue;
    }
    const kind = rng.weighted(weights);
    const call = new Call(kind);
    const entry = { kind, startedAt: Date.now() };
    inProgress.add(entry);
    const t0 = performance.now();
    try {
      await JOBS[kind](env, call, rng);
      recorder.callOk(call, entry.startedAt, performance.now() - t0, callBoundMs(args.marginMs, call.pauses));
    } catch (err) {
      recorder.callFailed(call, err, entry.startedAt, performance.now() - t0, callBoundMs(args.marginMs, call.pauses));
    } finally {
      inProgress.delete(entry);
    }
    await sleep(rng.int(5, 40));
  }
}

// A CPU-bound stretch in the pool's own process: no timer, no socket event runs meanwhile.
function blockLoop(ms: number): void {
  if (endCalled) return;
  const at = Date.now();
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
  recorder.loopBlocks.push({ startedAt: at, endedAt: Date.now() });
}

// Called from a timer; the stall itself starts in the phase asked for.
function blockLoopIn(phase: LoopPhase, ms: number): void {
  if (phase === 'timer') blockLoop(ms);
  else if (phase === 'immediate') setImmediate(() => blockLoop(ms));
  else stat(process.execPath, () => blockLoop(ms)); // completes in the poll phase
}

/** Resolves true when `promise` settles within `ms`, false otherwise; its timer is cleared. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

const callers = Array.from({ length: args.callers }, (_, i) => caller(i));
const timers: NodeJS.Timeout[] = [];

async function endPool(): Promise<void> {
  endCalled = true;
  for (const timer of timers) clearTimeout(timer);
  const calledAt = Date.now();
  out({ event: 'ending', at: calledAt });
  const t0 = performance.now();
  const ended = settlesWithin(pool.end(), END_LIMIT_MS);
  const resolved = await ended;
  const resolvedAt = resolved ? Date.now() : undefined;
  if (resolvedAt !== undefined) out({ event: 'ended', at: resolvedAt, endMs: Math.round(performance.now() - t0) });
  else out({ event: 'endHung', at: Date.now() });
  // end() waited for every borrow; callers now stop at their next turn, and statements left
  // running were failed when their connections closed.
  await settlesWithin(Promise.all(callers), 5_000);
  await settlesWithin(Promise.all([...dangling]), 2_000);
  for (const entry of inProgress) {
    recorder.anomaly({ type: 'pendingAfterEnd', kind: entry.kind, startedAt: entry.startedAt, durationMs: Date.now() - entry.startedAt });
  }
  if (recorder.dangling.pending > 0) recorder.anomaly({ type: 'pendingAfterEnd', kind: 'danglingStatement', message: `${recorder.dangling.pending} never settled` });
  out(recorder.result({ calledAt, resolvedAt, hung: !resolved }, pool.stats(), poolWarnings));
  // A hung end() would keep the process alive; the report is out, so leave.
  if (!resolved) process.exit(3);
}

function inject(fault: PoolFault): void {
  if (fault.kind === 'blockLoop') {
    blockLoopIn(fault.phase, fault.ms);
  } else if (fault.kind === 'lull') {
    lullUntil = Math.max(lullUntil, Date.now() + fault.ms);
    recorder.lulls++;
  } else {
    void endPool();
  }
}

for (const { atMs, fault } of plan.pool) {
  timers.push(setTimeout(() => inject(fault), Math.max(0, startedAt + atMs - Date.now())));
}
