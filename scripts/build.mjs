// npm run build (and prepack): the ESM build into dist/, the CommonJS build into dist/commonjs/
// (marked `"type": "commonjs"` by its own package.json), both compiled at once. Both builds'
// source and declaration maps point at lib/, which the package ships.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const builds = ['tsconfig.json', 'tsconfig.cjs.json'].map(async (project) => {
  const child = spawn(process.execPath, [tsc, '-p', join(root, project)], { cwd: root, stdio: 'inherit' });
  const [code, signal] = await once(child, 'exit');
  if (code !== 0) throw new Error(`tsc -p ${project} failed (${signal ?? `exit ${code}`})`);
});
const failed = (await Promise.allSettled(builds)).filter((r) => r.status === 'rejected');
if (failed.length > 0) {
  for (const { reason } of failed) console.error(reason.message);
  process.exit(1);
}
writeFileSync(join(root, 'dist/commonjs/package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);
