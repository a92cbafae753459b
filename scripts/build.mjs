// The package build: compile src/ to dist/ (tsconfig.build.json), then copy what tsc does not
// (the worker-thread entry, the conformance guest's C executor) and point the declarations'
// relative ".ts" imports at the ".js"/".d.ts" files that ship (tsc rewrites them in .js only).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: ['ignore', 2, 2] });
for (const f of ['explore/worker-entry.mjs', 'conform/guest/exec.c', 'report/page.js']) {
  mkdirSync(dirname(join(dist, f)), { recursive: true });
  copyFileSync(join(root, 'src', f), join(dist, f));
}
const walk = (d) => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
let n = 0;
for (const f of walk(dist).filter((x) => x.endsWith('.d.ts'))) {
  const s = readFileSync(f, 'utf8');
  const t = s.replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, (_, a, q, p) => `${a}${q}${p}.js${q}`);
  if (t !== s) {
    writeFileSync(f, t);
    n++;
  }
}
console.error(`dist/ built (${walk(dist).length} files; ${n} declaration files' imports pointed at .js)`);
