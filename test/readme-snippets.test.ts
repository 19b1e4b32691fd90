// Every TypeScript snippet in README.md compiles as written. Each ```ts / ```typescript block
// becomes a module of its own in a temp project (outside the checkout, its node_modules a
// link to ours), importing the library by its package name, mapped to lib/ by `paths`; the
// project's TypeScript (strict, module nodenext, skipLibCheck) must report no diagnostic.
// Blocks in other languages (sh, sql, json, a bare ``` for output) are not checked.
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const TS_LANGS = new Set(['ts', 'typescript']);

interface Snippet {
  /** 1-based, counting only the TypeScript blocks, in README order. */
  index: number;
  /** README.md line of the block's first code line, 1-based. */
  line: number;
  code: string;
}

/** The ```ts / ```typescript blocks of `markdown`, with where each starts. */
function typeScriptSnippets(markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  let open: { lang: string; fence: string; line: number; body: string[] } | undefined;
  for (const [i, text] of lines.entries()) {
    const fence = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(text);
    if (open === undefined) {
      if (fence !== null) open = { lang: fence[2]!.toLowerCase(), fence: fence[1]!, line: i + 2, body: [] };
    } else if (fence !== null && fence[1]!.startsWith(open.fence) && fence[2] === '') {
      if (TS_LANGS.has(open.lang)) snippets.push({ index: snippets.length + 1, line: open.line, code: open.body.join('\n') + '\n' });
      open = undefined;
    } else {
      open.body.push(text);
    }
  }
  return snippets;
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const snippets = typeScriptSnippets(readme);

t.test('the README has TypeScript snippets, all found', async (t) => {
  const opened = readme.split('\n').filter((l) => /^ {0,3}```\s*(ts|typescript)\s*$/i.test(l)).length;
  t.ok(snippets.length > 0, 'some snippets');
  t.equal(snippets.length, opened, 'one per ```ts / ```typescript fence');
});

t.test('every TypeScript snippet in README.md compiles as written', async (t) => {
  // A project of its own, as a user's would be: ESM, the dependencies reachable by name.
  const dir = mkdtempSync(join(tmpdir(), 'fresh-pool-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'readme-snippets', private: true, type: 'module' }));
  const files = new Map<string, Snippet>();
  for (const s of snippets) {
    const file = join(dir, `snippet-${s.index}.ts`);
    writeFileSync(file, s.code);
    files.set(file, s);
  }
  const program = ts.createProgram([...files.keys()], {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
    paths: {
      'mysql-fresh-pool': [join(root, 'lib/index.ts')],
      'mysql-fresh-pool/prometheus': [join(root, 'lib/prometheus.ts')],
      'mysql-fresh-pool/opentelemetry': [join(root, 'lib/opentelemetry/index.ts')],
      'mysql-fresh-pool/knex': [join(root, 'lib/knex/index.ts')],
      'mysql-fresh-pool/typeorm': [join(root, 'lib/typeorm/index.ts')],
    },
  });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file === undefined || d.start === undefined) return `TS${d.code}: ${text}`;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    const snippet = files.get(d.file.fileName);
    if (snippet === undefined) return `${d.file.fileName}:${line + 1}:${character + 1} TS${d.code}: ${text}`;
    const code = snippet.code.split('\n')[line] ?? '';
    return `snippet ${snippet.index} (README.md line ${snippet.line + line}): TS${d.code}: ${text}\n    ${code.trim()}`;
  });
  t.same(problems, [], `${snippets.length} snippets compile with no diagnostic`);
  if (problems.length !== 0) t.comment(problems.join('\n'));
});
