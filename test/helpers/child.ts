/**
 * Runs a TypeScript script in a child Node process with a hard time limit, for scenarios
 * that could hang the process itself (a microtask loop starves every timer, tap's own
 * included, so such a hang cannot be caught from inside the test process).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface ChildResult {
  /** stdout split into lines, each parsed as JSON when it parses. */
  lines: unknown[];
  stdout: string;
  stderr: string;
  /** True when the child was killed at the time limit. */
  timedOut: boolean;
  exitCode: number | null;
  elapsedMs: number;
}

const tsLoader = import.meta.resolve('@tapjs/typescript/import');

/** Runs `script` (a path relative to this helpers folder) with `args`, killing it after `timeoutMs`. */
export function runChild(script: string, args: string[], timeoutMs: number): Promise<ChildResult> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const env = { ...process.env, NODE_OPTIONS: '' };
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [`--import=${tsLoader}`, path, ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', env },
      (err, stdout, stderr) => {
        const e = err as (Error & { killed?: boolean; code?: number | string }) | null;
        resolve({
          lines: stdout.split('\n').filter(Boolean).map((l) => {
            try {
              return JSON.parse(l) as unknown;
            } catch {
              return l;
            }
          }),
          stdout,
          stderr,
          timedOut: e?.killed === true,
          exitCode: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          elapsedMs: Date.now() - started,
        });
      },
    );
  });
}
