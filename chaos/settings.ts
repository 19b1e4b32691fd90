/**
 * The run's fixed settings: the pool configuration under test, the time bound each call must
 * meet, and the command-line options. Durations are in ms.
 */
import type { FreshPoolConfig } from '../lib/index.js';
import { stream } from './rng.js';

/** The pool configuration under test (the connection is added by the child). */
export const POOL_SETTINGS = Object.freeze({
  max: 8,
  min: 2,
  acquireTimeout: 5_000,
  pingTimeout: 500,
  // Far below any wait_timeout the run sets (1 s), so idle connections are pinged first.
  connWaitAge: 200,
  // Short enough that connections are retired, closed and pinged while the run lasts.
  maxAge: 15_000,
  idleTimeout: 5_000,
  keepAliveInterval: 1_000,
  name: 'chaos',
} satisfies Omit<FreshPoolConfig, 'connection'>);

/**
 * The two keep-alive profiles; the seed picks one. Above connWaitAge (1 000 ms), idle
 * connections are mostly checked by the borrow's own ping; below it (100 ms), keep-alive
 * pings keep them fresh, so a borrow lends without a ping, possibly while a keep-alive ping
 * of that connection is still in flight.
 */
export const KEEP_ALIVE_PROFILES = Object.freeze({ borrowPings: 1_000, keepAlivePings: 100 });

/** The pool configuration of run `seed`: POOL_SETTINGS with the seed's keep-alive profile. */
export function poolSettingsFor(seed: number): { profile: keyof typeof KEEP_ALIVE_PROFILES; settings: Omit<FreshPoolConfig, 'connection'> } {
  const profile = stream(seed, 'pool-settings').chance(0.5) ? 'keepAlivePings' : 'borrowPings';
  return { profile, settings: { ...POOL_SETTINGS, keepAliveInterval: KEEP_ALIVE_PROFILES[profile] } };
}

/** The longest a fault freezes the network path, ms: a statement in flight waits that long. */
export const MAX_FREEZE_MS = 1_500;

/** Callers that only run the long "hold" jobs (a connection kept across pauses). */
export const HOLDER_CALLERS = 2;

/** After end() resolved: how long the child may take to exit by itself. */
export const EXIT_LIMIT_MS = 5_000;

/** After end() resolved: how long the server may take to drop the pool's last connection. */
export const SERVER_CLEAN_LIMIT_MS = 2_000;

/** How long end() may take before the run calls it hung. */
export const END_LIMIT_MS = 30_000;

/**
 * The most a call may take, ms: one borrow (acquireTimeout plus a validation ping), a
 * statement held up by a frozen path, and the margin. Each deliberate pause adds itself, and
 * a statement after it may ping and replace the connection (pingTimeout + acquireTimeout).
 */
export function callBoundMs(marginMs: number, pauses: readonly number[]): number {
  const base = POOL_SETTINGS.acquireTimeout + POOL_SETTINGS.pingTimeout + MAX_FREEZE_MS + marginMs;
  return pauses.reduce((sum, pauseMs) => sum + pauseMs + POOL_SETTINGS.pingTimeout + POOL_SETTINGS.acquireTimeout, base);
}

/** Thrown by `parseOptions` for `--help`: print the usage and stop, successfully. */
export class UsageRequested extends Error {
  constructor() {
    super(USAGE);
  }
}

/** What the command line asks for. */
export interface RunOptions {
  /** How long the workload runs before end(), ms. */
  durationMs: number;
  seed: number;
  /** Concurrent callers, at least 16 by default. */
  callers: number;
  /** Slack over the computed bound of each call, ms (scheduling on a busy machine). */
  marginMs: number;
  /** Where to write the results as JSON, if anywhere. */
  jsonPath: string | undefined;
  /** Print the fault plan and exit. */
  planOnly: boolean;
}

/** Default slack over each call's bound, ms. */
export const DEFAULT_MARGIN_MS = 2_000;

/** The command line's usage line. */
export const USAGE = 'usage: npm run chaos -- [--duration <seconds>] [--seed <n>] [--callers <n>] [--margin <ms>] [--json <file>] [--plan]';

/** Parses `argv` (after the script name); throws with the usage on anything unknown. */
export function parseOptions(argv: readonly string[]): RunOptions {
  const options: RunOptions = {
    durationMs: 120_000,
    seed: Math.floor(Math.random() * 2 ** 31),
    callers: 16,
    marginMs: DEFAULT_MARGIN_MS,
    jsonPath: undefined,
    planOnly: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    const number = (least: number) => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < least) throw new Error(`${flag} expects an integer >= ${least}\n${USAGE}`);
      return v;
    };
    if (flag === '--duration') options.durationMs = number(5) * 1_000;
    else if (flag === '--seed') options.seed = number(0);
    else if (flag === '--callers') options.callers = number(HOLDER_CALLERS + 1);
    else if (flag === '--margin') options.marginMs = number(0);
    else if (flag === '--json') options.jsonPath = value();
    else if (flag === '--plan') options.planOnly = true;
    else if (flag === '--help' || flag === '-h') throw new UsageRequested();
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  return options;
}
