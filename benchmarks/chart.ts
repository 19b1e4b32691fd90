/**
 * The chart: a Vega-Lite spec compiled and rendered to SVG by Vega in Node (no browser), and
 * to PNG by resvg when that is installed. One column per workload; the top row is throughput
 * (ops/s, median of rounds), the bottom row the per-round ratio to mysql2's pool with the
 * spread of the rounds as whiskers. Every value is printed on the chart, not only in tooltips.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { CONTENDER_NAMES } from './contenders.js';
import { opsRatio, type BenchResult } from './report.js';

const COLORS: Record<(typeof CONTENDER_NAMES)[number], string> = {
  'fresh-pool': '#2b8a3e',
  'fresh-pool trace:false': '#8ce99a',
  'mysql2-pool': '#1864ab',
  'mysql2-pool trace:false': '#74c0fc',
  'raw mysql2': '#495057',
  'generic-pool': '#ced4da',
  'generic-pool+ping': '#e8590c',
};

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

export function chartSpec(r: BenchResult): TopLevelSpec {
  const workloads = r.workloads.map((w) => w.title);
  const concurrencies = r.settings.concurrencies.map(String);
  const values = r.throughput.map((f) => {
    const ratio = opsRatio(r, f.workload, f.concurrency, f.pool, 'mysql2-pool')!;
    return {
      workload: r.workloads.find((w) => w.id === f.workload)?.title ?? f.workload,
      concurrency: String(f.concurrency),
      pool: f.pool,
      opsPerSec: f.opsPerSec,
      // Room above the tallest bar for its label: an invisible mark at this height.
      opsHeadroom: f.opsPerSec * 1.16,
      ratio: ratio.median,
      ratioHigh: ratio.max + 0.08,
      ratioLow: ratio.min - 0.08,
      ratioMin: ratio.min,
      ratioMax: ratio.max,
    };
  });
  const x = {
    field: 'concurrency',
    type: 'nominal' as const,
    sort: concurrencies,
    title: 'concurrency (callers at once)',
    axis: { labelAngle: 0, labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal' as const },
  };
  const xOffset = { field: 'pool', type: 'nominal' as const, sort: [...CONTENDER_NAMES] };
  const color = {
    field: 'pool',
    type: 'nominal' as const,
    sort: [...CONTENDER_NAMES],
    scale: { domain: [...CONTENDER_NAMES], range: CONTENDER_NAMES.map((n) => COLORS[n]) },
    legend: { title: 'pool', orient: 'bottom' as const, direction: 'horizontal' as const, columns: 4, labelFontSize: 12, titleFontSize: 12, symbolType: 'square', labelLimit: 0, columnPadding: 24 },
  };
  const column = {
    field: 'workload',
    type: 'nominal' as const,
    sort: workloads,
    title: null,
    header: { labelFontSize: 13, labelFontWeight: 'bold' as const, labelLimit: 0 },
  };
  const panel = { width: 290, height: 200 };
  const date = r.date.slice(0, 10);
  const s = r.settings;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    padding: 16,
    title: {
      text: `mysql-fresh-pool benchmark, ${date}${r.quick ? ' (QUICK RUN: not for figures)' : ''}`,
      subtitle: [
        `${r.machine.cores} cores (${r.machine.cpu}), Node ${r.machine.node}, MariaDB ${r.server.version}, ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
        `${r.pinning.note}. Pool size ${s.size}; ${s.rounds} rounds of ${s.roundMs} ms per pool, order rotating each round.`,
      ],
      anchor: 'start',
      fontSize: 16,
      subtitleFontSize: 12,
      subtitlePadding: 6,
      offset: 12,
    },
    data: { values },
    vconcat: [
      {
        title: { text: 'Throughput, ops/s (median of rounds; higher is better)', anchor: 'start', fontSize: 13 },
        facet: { column },
        spec: {
          ...panel,
          layer: [
            { mark: { type: 'bar' }, encoding: { x, xOffset, color, y: { field: 'opsPerSec', type: 'quantitative', title: 'ops/s', axis: { format: '~s', grid: true, tickCount: 6 } } } },
            {
              mark: { type: 'text', angle: 270, align: 'left', baseline: 'middle', dx: 3, fontSize: 9, color: '#212529' },
              encoding: { x, xOffset, y: { field: 'opsPerSec', type: 'quantitative' }, text: { field: 'opsPerSec', type: 'quantitative', format: '.3~s' } },
            },
            { mark: { type: 'tick', opacity: 0 }, encoding: { x, xOffset, y: { field: 'opsHeadroom', type: 'quantitative' } } },
          ],
        },
        resolve: { scale: { y: 'independent' } },
      },
      {
        title: {
          text: "Throughput ÷ mysql2-pool's in the same round (median of per-round ratios; whiskers: min–max of the rounds)",
          anchor: 'start',
          fontSize: 13,
        },
        facet: { column },
        spec: {
          ...panel,
          layer: [
            {
              mark: { type: 'bar' },
              encoding: {
                x,
                xOffset,
                color,
                y: { field: 'ratio', type: 'quantitative', title: '× mysql2-pool', scale: { zero: false }, axis: { grid: true, tickCount: 8, format: '.2f' } },
                y2: { datum: 1 },
              },
            },
            { mark: { type: 'rule', color: '#212529', strokeWidth: 1 }, encoding: { x, xOffset, y: { field: 'ratioMin', type: 'quantitative' }, y2: { field: 'ratioMax' } } },
            {
              transform: [{ filter: 'datum.ratio >= 1' }],
              mark: { type: 'text', angle: 270, align: 'left', baseline: 'middle', dx: 3, fontSize: 9, color: '#212529' },
              encoding: { x, xOffset, y: { field: 'ratioMax', type: 'quantitative' }, text: { field: 'ratio', type: 'quantitative', format: '.2f' } },
            },
            {
              transform: [{ filter: 'datum.ratio < 1' }],
              mark: { type: 'text', angle: 270, align: 'right', baseline: 'middle', dx: -3, fontSize: 9, color: '#212529' },
              encoding: { x, xOffset, y: { field: 'ratioMin', type: 'quantitative' }, text: { field: 'ratio', type: 'quantitative', format: '.2f' } },
            },
            { mark: { type: 'rule', color: '#1864ab', strokeDash: [4, 3] }, encoding: { y: { datum: 1 } } },
            { mark: { type: 'tick', opacity: 0 }, encoding: { x, xOffset, y: { field: 'ratioHigh', type: 'quantitative' } } },
            { mark: { type: 'tick', opacity: 0 }, encoding: { x, xOffset, y: { field: 'ratioLow', type: 'quantitative' } } },
          ],
        },
      },
    ],
    spacing: 28,
    config: {
      font: FONT,
      view: { stroke: '#adb5bd' },
      axis: { labelLimit: 0, titleLimit: 0, labelFontSize: 11, titleFontSize: 11 },
      axisY: { titlePadding: 8 },
      header: { labelLimit: 0, titleLimit: 0 },
      legend: { labelLimit: 0, titleLimit: 0 },
      title: { limit: 0 },
      concat: { spacing: 28 },
      facet: { spacing: 24 },
    },
  } as TopLevelSpec;
}

/** The chart as an SVG document. */
export async function renderChartSvg(r: BenchResult): Promise<string> {
  const view = new vega.View(vega.parse(compile(chartSpec(r)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The SVG as PNG, or undefined when @resvg/resvg-js is not installed. */
export async function svgToPng(svg: string): Promise<Buffer | undefined> {
  let Resvg: typeof import('@resvg/resvg-js').Resvg;
  try {
    ({ Resvg } = await import('@resvg/resvg-js'));
  } catch {
    return undefined;
  }
  const rendered = new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render();
  return rendered.asPng();
}
