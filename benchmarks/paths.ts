/** Where the benchmark's files live, whether it runs from its sources or from build/bench/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'benchmarks'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above the benchmark');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = repoRoot();
/** Committed, dated results (written only with --save) and local/ (git-ignored) for every run. */
export const RESULTS_DIR = join(REPO_ROOT, 'benchmarks', 'results');
