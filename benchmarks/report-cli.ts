/**
 * `npm run bench:report -- [RESULT.json] [--print] [--png]`: from a saved result (by default
 * the newest dated one in benchmarks/results/), regenerates its chart (RESULT.svg beside it)
 * and the README's figures between `<!-- bench:table:start -->` and `<!-- bench:table:end -->`.
 *
 * --print   only print the Markdown block on stdout; write nothing
 * --png     also write RESULT.png beside it (for looking at the chart)
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { renderChartSvg, svgToPng } from './chart.js';
import { REPO_ROOT, RESULTS_DIR } from './paths.js';
import { MARKERS, renderMarkdownBlock, replaceBlock, type BenchResult } from './report.js';

const argv = process.argv.slice(2);
const flags = new Set(argv.filter((a) => a.startsWith('--')));
const files = argv.filter((a) => !a.startsWith('--'));
for (const f of flags) {
  if (!['--print', '--png'].includes(f)) {
    process.stderr.write(`unknown option ${f}; usage: npm run bench:report -- [RESULT.json] [--print] [--png]\n`);
    process.exit(2);
  }
}

function newestDated(): string {
  const dated = existsSync(RESULTS_DIR) ? readdirSync(RESULTS_DIR).filter((f) => /^\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort() : [];
  const last = dated.at(-1);
  if (!last) {
    process.stderr.write('no dated result in benchmarks/results/: make one with `npm run bench -- --save`, or name a JSON file\n');
    process.exit(1);
  }
  return join(RESULTS_DIR, last);
}

const jsonPath = resolve(process.env.INIT_CWD ?? process.cwd(), files[0] ?? newestDated());
const result = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchResult;
if (result.schema !== 2) {
  process.stderr.write(`${jsonPath}: not a result of this benchmark's format (schema 2)\n`);
  process.exit(1);
}
const svgPath = jsonPath.replace(/\.json$/, '.svg');
const chartLink = relative(REPO_ROOT, svgPath).split('\\').join('/');
const block = renderMarkdownBlock(result, chartLink);

if (flags.has('--print')) {
  process.stdout.write(`${MARKERS.start}\n${block}\n${MARKERS.end}\n`);
  process.exit(0);
}

const svg = await renderChartSvg(result);
writeFileSync(svgPath, svg);
process.stderr.write(`chart: ${relative(REPO_ROOT, svgPath)}\n`);
if (flags.has('--png')) {
  const png = await svgToPng(svg);
  const pngPath = jsonPath.replace(/\.json$/, '.png');
  if (png) {
    writeFileSync(pngPath, png);
    process.stderr.write(`chart: ${relative(REPO_ROOT, pngPath)}\n`);
  } else {
    process.stderr.write('--png: @resvg/resvg-js is not installed\n');
  }
}
if (result.quick) process.stderr.write(`warning: ${basename(jsonPath)} is a quick run: not for figures\n`);

const readmePath = join(REPO_ROOT, 'README.md');
const readme = readFileSync(readmePath, 'utf8');
const updated = replaceBlock(readme, block);
if (updated === undefined) {
  process.stderr.write(`README.md has no ${MARKERS.start} … ${MARKERS.end} block: the block follows on stdout, paste it in\n`);
  process.stdout.write(`${MARKERS.start}\n${block}\n${MARKERS.end}\n`);
} else if (updated === readme) {
  process.stderr.write('README.md: figures already up to date\n');
} else {
  writeFileSync(readmePath, updated);
  process.stderr.write(`README.md: figures replaced from ${relative(REPO_ROOT, jsonPath)}\n`);
}
