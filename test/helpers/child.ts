/**
 * Runs a TypeScript script in a child Node process with a hard time limit, for scenarios
 * that could hang the process itself (a microtask loop starves every timer, tap's own
 * included, so such a hang cannot be caught from inside the test process).
 *
 * Starting Node and compiling the TypeScript takes seconds, and many more on a busy machine,
 * so no deadline counts it: the script calls `childLoaded()` as its first statement, and the
 * limits run from that line. Before it there is only a generous safety net.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ChildLimits {
  /**
   * ms the scenario may run, counted from `childLoaded()`: the child is killed (SIGKILL) this
   * long after its modules were loaded. Size it well above what the scenario needs; a child
   * that should exit by itself and does not is what it catches.
   */
  runMs: number;
  /**
   * Kill the child `ms` after the first line for which `when` is true (e.g. the scenario went
   * idle), for scenarios recorded rather than asserted, or asserted relative to that line.
   */
  stopAfter?: { when: (line: unknown) => boolean; ms: number };
  /** ms allowed before `childLoaded()`: a safety net for a child that never starts. Default 90 000. */
  loadMs?: number;
}

export interface ChildResult {
  /** stdout split into lines, each parsed as JSON when it parses (the loaded marker left out). */
  lines: unknown[];
  stdout: string;
  stderr: string;
  /** True when the child was killed at a limit. */
  timedOut: boolean;
  /** Which limit killed it: `load` (never loaded), `run`, or `stopAfter`. */
  killedBy: 'load' | 'run' | 'stopAfter' | undefined;
  exitCode: number | null;
  /** ms from start to exit, loading included: for messages only. */
  elapsedMs: number;
  /** ms from `childLoaded()` to exit, as seen here: the scenario's own time; undefined if it never loaded. */
  runMs: number | undefined;
}

const tsLoader = import.meta.resolve('@tapjs/typescript/import');
const LOADED = 'fresh-pool-child-loaded';

/**
 * Called by a child script as its first statement: every module it imports has been loaded
 * and compiled by then, so `runChild`'s clocks start here.
 */
export function childLoaded(): void {
  process.stdout.write(`${JSON.stringify({ [LOADED]: true, at: Date.now() })}\n`);
}

/** Runs `script` (a path relative to this helpers folder) with `args`, within `limits`. */
export function runChild(script: string, args: string[], limits: ChildLimits): Promise<ChildResult> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const env = { ...process.env, NODE_OPTIONS: '' };
  const started = Date.now();
  let loadedAt: number | undefined;
  let killedBy: ChildResult['killedBy'];
  const timers: NodeJS.Timeout[] = [];
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [`--import=${tsLoader}`, path, ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      for (const timer of timers) clearTimeout(timer);
      const e = err as (Error & { code?: number | string }) | null;
      resolve({
        lines: parseLines(stdout).filter((l) => !(typeof l === 'object' && l !== null && LOADED in l)),
        stdout,
        stderr,
        timedOut: killedBy !== undefined,
        killedBy,
        exitCode: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        elapsedMs: Date.now() - started,
        runMs: loadedAt === undefined ? undefined : Date.now() - loadedAt,
      });
    });
    const killAfter = (ms: number, why: NonNullable<ChildResult['killedBy']>) => {
      timers.push(
        setTimeout(() => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          killedBy ??= why;
          child.kill('SIGKILL');
        }, ms),
      );
    };
    killAfter(limits.loadMs ?? 90_000, 'load');
    let pending = '';
    let stopArmed = false;
    child.stdout?.on('data', (chunk: Buffer | string) => {
      pending += chunk.toString();
      const complete = pending.split('\n');
      pending = complete.pop() ?? '';
      for (const line of parseLines(complete.join('\n'))) {
        if (loadedAt === undefined && typeof line === 'object' && line !== null && LOADED in line) {
          loadedAt = Date.now();
          clearTimeout(timers[0]); // the load limit: loaded now
          killAfter(limits.runMs, 'run');
        } else if (!stopArmed && limits.stopAfter?.when(line)) {
          stopArmed = true;
          killAfter(limits.stopAfter.ms, 'stopAfter');
        }
      }
    });
  });
}

function parseLines(text: string): unknown[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        return l;
      }
    });
}
