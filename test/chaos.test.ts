// The chaos run (chaos/run.ts, `npm run chaos`) in the suite: two fixed seeds, 15 s each,
// chosen so that between them every kind of fault is injected (KILL idle and busy, KILL during
// an event-loop stall, a restart, a frozen and a dropped path, wait_timeout 1 s,
// max_connections 1, stalls, end() under load) and both keep-alive profiles run. Each run
// starts its own private server and a child process for the pool; its JSON report must show
// every invariant held. The run's own time bounds carry a margin for a busy machine; this
// test only bounds the whole run.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Report {
  held: boolean;
  reproduce: string;
  faults: Array<{ kind: string; ok: boolean }>;
  invariants: Array<{ group: string; name: string; held: boolean; detail: string }>;
  child?: { calls: Record<string, { total: number }> };
}

const SEEDS = [24, 34];
const DURATION_S = 15;
// Server start, the TypeScript loader, the run, end() and the checks: generous on purpose.
const RUN_LIMIT_MS = 150_000;

t.setTimeout(SEEDS.length * RUN_LIMIT_MS + 30_000);

const loader = import.meta.resolve('@tapjs/typescript/import');
const script = fileURLToPath(new URL('../chaos/run.ts', import.meta.url));

function chaos(seed: number, jsonPath: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = [`--import=${loader}`, script, '--seed', String(seed), '--duration', String(DURATION_S), '--json', jsonPath];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: RUN_LIMIT_MS, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

for (const seed of SEEDS) {
  t.test(`chaos run, seed ${seed}, ${DURATION_S} s`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fresh-pool-chaos-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const jsonPath = join(dir, 'report.json');
    const { code, stdout, stderr } = await chaos(seed, jsonPath);
    let report: Report;
    try {
      report = JSON.parse(readFileSync(jsonPath, 'utf8')) as Report;
    } catch {
      t.fail(`no report (exit code ${code})`, { stdout, stderr: stderr.slice(-4_000) });
      return;
    }
    t.comment(stdout.slice(stdout.indexOf('\nInvariants')).trim());
    for (const inv of report.invariants) t.ok(inv.held, `${inv.group}: ${inv.name}`, { detail: inv.detail });
    t.ok(report.faults.length > 0, `faults were injected (${report.faults.map((f) => f.kind).join(', ')})`);
    t.ok(Object.values(report.child?.calls ?? {}).reduce((sum, c) => sum + c.total, 0) > 100, 'the workload ran');
    t.equal(code, report.held ? 0 : 1, 'the exit code says whether every invariant held');
    if (!report.held) t.comment(`reproduce: ${report.reproduce}`);
  });
}
