/**
 * The fault schedule: a pure function of the seed, the duration and whether the server may
 * be restarted. The orchestrator runs the server-side faults, the child (the pool's process)
 * runs the pool-side ones; both compute the same plan from the same arguments.
 */
import { MAX_FREEZE_MS, POOL_SETTINGS } from './settings.js';
import { fingerprint, stream } from './rng.js';

/** A fault the orchestrator injects on the server or the network path. */
export type ServerFault =
  /** KILL CONNECTION on `count` of the pool's connections, idle ones, busy ones or any. */
  | { kind: 'kill'; count: number; target: 'idle' | 'busy' | 'any' }
  /** Stop the server, wait `downMs` (0.2–6 s), start it again. */
  | { kind: 'restart'; downMs: number }
  /** Every flow of the path stops forwarding for `ms`, then resumes (a stalled path). */
  | { kind: 'freeze'; ms: number }
  /** The flows open now go silent for `silentMs`, then are reset (a NAT flushing its table). */
  | { kind: 'drop'; silentMs: number }
  /** SET GLOBAL wait_timeout = 1 for `ms` (connections made meanwhile keep it). */
  | { kind: 'waitTimeout'; ms: number }
  /**
   * SET GLOBAL max_connections = 1 for `ms` (1–7 s): the pool can open no connection. `kill`
   * of the pool's connections (idle or busy) are killed as it starts, so the pool has to try.
   */
  | { kind: 'maxConnections'; ms: number; kill: number }
  /**
   * KILL CONNECTION on `count` of the pool's connections while the pool's event loop is
   * blocked (planned inside a `blockLoop`): the closes sit unread until the stall ends.
   */
  | { kind: 'killInStall'; count: number };

/** The faults drawn by weight; `killInStall` is placed by the stalls instead. */
type WeightedKind = Exclude<ServerFault['kind'], 'killInStall'>;

/** A fault the child injects in the pool's own process. */
export type PoolFault =
  /**
   * Busy-wait `ms`: the pool's event loop stalls, from a callback of the loop's `phase`. From
   * a timer, the timers that come due meanwhile wait for the next poll; from an I/O callback
   * or a setImmediate, they run right after the stall, before any socket is read.
   */
  | { kind: 'blockLoop'; ms: number; phase: LoopPhase }
  /**
   * The mixed callers start no call for `ms` (not a fault: a lull in the load), so idle
   * connections pass connWaitAge and keepAliveInterval, and the burst after it borrows them.
   */
  | { kind: 'lull'; ms: number }
  /** end() the pool while work is in flight; the last pool-side entry. */
  | { kind: 'end' };

/** Where in the event loop a stall starts. */
export type LoopPhase = 'timer' | 'io' | 'immediate';
const PHASES: readonly LoopPhase[] = ['timer', 'io', 'immediate'];

/** One entry of the schedule. */
export interface Planned<F> {
  /** When to inject it, ms after the workload started (later if the previous one overran). */
  atMs: number;
  fault: F;
}

/** The whole schedule. */
export interface FaultPlan {
  server: Array<Planned<ServerFault>>;
  /** Run alongside `server` (a second lane), each one inside a planned stall (see planStallKills). */
  stallKills: Array<Planned<ServerFault>>;
  pool: Array<Planned<PoolFault>>;
  /** The same plan always has the same fingerprint. */
  fingerprint: string;
}

const SERVER_WEIGHTS = { kill: 30, freeze: 12, drop: 10, restart: 10, waitTimeout: 10, maxConnections: 8 } as const;
/** Faults that need a private server (a restart, or a server-wide setting). */
const NEEDS_PRIVATE_SERVER: ReadonlySet<WeightedKind> = new Set(['restart', 'waitTimeout', 'maxConnections']);

/** Load before the first fault, ms: the pool has warmed up. */
const WARM_UP_MS = 1_500;
/** No server fault starts this close to end(), ms, so the end is reached on a healed path. */
const QUIET_TAIL_MS = 1_500;

/** Plans the faults of a run of `durationMs` with seed `seed`. */
export function planFaults(seed: number, durationMs: number, canRestart: boolean): FaultPlan {
  const server = planServerFaults(seed, durationMs, canRestart);
  const stalls = planStallKills(seed, durationMs);
  const pool = planPoolFaults(seed, durationMs, stalls.pool);
  const stallKills = stalls.server;
  return { server, stallKills, pool, fingerprint: fingerprint({ server, stallKills, pool }) };
}

/** ms into a stall at which its KILL is sent: well inside it, with time for the close to arrive before it ends. */
const KILL_INTO_STALL_MS = 40;
/** A lull this long before the stall leaves connections idle, but used well within connWaitAge. */
const LULL_BEFORE_STALL_MS = 30;

/**
 * The stall-and-KILL scenario, every few seconds: the load pauses for a moment (connections
 * come back and sit idle), the pool's event loop stalls for 100–150 ms, and some idle
 * connections are killed mid-stall. When the stall and the lull end together, a burst of
 * borrows finds connections used less than connWaitAge ago, so no ping is due: only the
 * pool's stall check (one loop turn to read the closes) keeps the dead ones from being lent.
 */
function planStallKills(seed: number, durationMs: number): { server: Array<Planned<ServerFault>>; pool: Array<Planned<PoolFault>> } {
  const rng = stream(seed, 'stall-kills');
  const server: Array<Planned<ServerFault>> = [];
  const pool: Array<Planned<PoolFault>> = [];
  for (let atMs = WARM_UP_MS + rng.int(500, 2_500); atMs < durationMs - QUIET_TAIL_MS; atMs += rng.int(2_500, 6_000)) {
    const stallMs = rng.int(100, 150);
    // The lull ends just before the stall does: the callers' timers come due during it.
    pool.push({ atMs: atMs - LULL_BEFORE_STALL_MS, fault: { kind: 'lull', ms: LULL_BEFORE_STALL_MS + stallMs - 20 } });
    pool.push({ atMs, fault: { kind: 'blockLoop', ms: stallMs, phase: rng.pick(['io', 'immediate'] as const) } });
    server.push({ atMs: atMs + KILL_INTO_STALL_MS, fault: { kind: 'killInStall', count: rng.int(2, 4) } });
  }
  return { server, pool };
}

function planServerFaults(seed: number, durationMs: number, canRestart: boolean): Array<Planned<ServerFault>> {
  const rng = stream(seed, 'server-faults');
  const weights = Object.fromEntries(Object.entries(SERVER_WEIGHTS).filter(([kind]) => canRestart || !NEEDS_PRIVATE_SERVER.has(kind as WeightedKind)));
  const plan: Array<Planned<ServerFault>> = [];
  for (let atMs = WARM_UP_MS; atMs < durationMs - QUIET_TAIL_MS; ) {
    const kind = rng.weighted(weights) as WeightedKind;
    const fault = serverFault(kind, rng);
    plan.push({ atMs, fault });
    atMs += expectedMs(fault) + rng.int(300, 2_500);
  }
  return plan;
}

function serverFault(kind: WeightedKind, rng: ReturnType<typeof stream>): ServerFault {
  switch (kind) {
    case 'kill':
      return { kind, count: rng.int(1, 3), target: rng.pick(['idle', 'busy', 'any'] as const) };
    case 'restart':
      // Sometimes down longer than acquireTimeout: waiting borrows must time out, typed.
      return { kind, downMs: rng.int(200, 6_000) };
    case 'freeze':
      // Longer than pingTimeout, so a ping sent into it fails.
      return { kind, ms: rng.int(POOL_SETTINGS.pingTimeout + 100, MAX_FREEZE_MS) };
    case 'drop':
      return { kind, silentMs: rng.int(200, MAX_FREEZE_MS) };
    case 'waitTimeout':
      return { kind, ms: rng.int(1_500, 4_000) };
    case 'maxConnections':
      // Up to every connection killed, for longer than acquireTimeout at times.
      return { kind, ms: rng.int(1_000, 7_000), kill: rng.int(0, POOL_SETTINGS.max) };
  }
}

// What a fault usually takes, so the next one is planned after it (a restart's own stop and
// start take about a second each).
function expectedMs(fault: ServerFault): number {
  switch (fault.kind) {
    case 'kill':
    case 'killInStall':
      return 0;
    case 'restart':
      return fault.downMs + 2_000;
    case 'freeze':
      return fault.ms;
    case 'drop':
      return fault.silentMs;
    case 'waitTimeout':
    case 'maxConnections':
      return fault.ms;
  }
}

function planPoolFaults(seed: number, durationMs: number, stallScenarios: ReadonlyArray<Planned<PoolFault>>): Array<Planned<PoolFault>> {
  const rng = stream(seed, 'pool-faults');
  const plan: Array<Planned<PoolFault>> = [...stallScenarios];
  for (let atMs = WARM_UP_MS + rng.int(0, 1_000); atMs < durationMs - QUIET_TAIL_MS; atMs += rng.int(800, 3_000)) {
    plan.push({ atMs, fault: { kind: 'blockLoop', ms: rng.int(100, 400), phase: rng.pick(PHASES) } });
  }
  // Lulls draw from their own stream, so adding them left the stalls' schedule unchanged.
  const lulls = stream(seed, 'lulls');
  for (let atMs = WARM_UP_MS + lulls.int(0, 2_000); atMs < durationMs - QUIET_TAIL_MS; atMs += lulls.int(1_500, 4_000)) {
    const ms = lulls.int(250, 1_500);
    plan.push({ atMs, fault: { kind: 'lull', ms } });
    atMs += ms;
  }
  plan.sort((a, b) => a.atMs - b.atMs);
  plan.push({ atMs: durationMs + rng.int(0, 1_000), fault: { kind: 'end' } });
  return plan;
}
