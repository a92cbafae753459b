// Section 7 of the benchmark: fault-vs-revoke race shapes, F faulting threads x P pages each x R
// COMMAND writes (off, on, ...), explored exhaustively by the explorer within a time budget, beside
// Spin on bench/fault-vs-revoke.pml (the same race abstracted to Promela) in the same run. Prints
// figures and ratios; asserts nothing. Spin's column is skipped with a note when `spin` or `gcc`
// is missing (Debian: apt-get install spin).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario } from '../src/scenario/loader.ts';
import { exploreDpor, type ExploreResult } from '../src/explore/explorer.ts';
import { fixed, heading, int, mib, table } from './format.ts';

const PML = fileURLToPath(new URL('./fault-vs-revoke.pml', import.meta.url));
export const SHAPES: Array<[number, number, number]> = [[1, 1, 2], [1, 2, 2], [2, 1, 2], [1, 3, 2], [2, 2, 2], [2, 2, 4], [3, 3, 4]];

/** The race as a scenario: a 64 KiB BAR0 mapping (4 KiB faults), thread f loads pages f*P .. f*P+P-1. */
export function shapeScenario(f: number, p: number, r: number): string {
  const lines = [
    `name: fault-vs-revoke-${f}x${p}x${r}`,
    'devices:',
    '  - { name: gpu0, profile: h100 }',
    'setup:',
    '  - open: { path: /dev/vfio/devices/gpu0, as: dev }',
    '  - mmap: { fd: dev, offset: 0, length: 64KiB, as: m }',
    'threads:',
  ];
  for (let t = 0; t < f; t++) {
    lines.push(`  f${t}:`);
    for (let i = 0; i < p; i++) lines.push(`    - load: { addr: m, offset: ${(t * p + i) * 4096}, width: 4 }`);
  }
  lines.push('  vmm:');
  for (let i = 0; i < r; i++) lines.push(`    - config_write: { fd: dev, reg: COMMAND, value: ${i % 2 ? 2 : 0} }`);
  return lines.join('\n') + '\n';
}

interface SpinRun { states: number; seconds: number; errors: number; rssKb: number }

function spinRun(dir: string, f: number, p: number, r: number): SpinRun | string {
  const def = [`-DF=${f}`, `-DP=${p}`, `-DR=${r}`];
  try {
    execFileSync('spin', ['-a', ...def, 'fault-vs-revoke.pml'], { cwd: dir, stdio: 'pipe' });
    execFileSync('gcc', ['-O2', '-DSAFETY', '-DMEMLIM=8192', '-o', 'pan', 'pan.c'], { cwd: dir, stdio: 'pipe' });
  } catch (e) {
    return `spin/gcc failed: ${(e as Error).message.split('\n')[0]}`;
  }
  const t0 = performance.now();
  const run = spawnSync('/usr/bin/time', ['-f', 'RSS %M', './pan', '-m100000'], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 24 });
  const seconds = (performance.now() - t0) / 1000;
  const out = (run.stdout ?? '') + (run.stderr ?? '');
  const states = Number(/(\d+) states, stored/.exec(out)?.[1] ?? NaN);
  const errors = Number(/errors: (\d+)/.exec(out)?.[1] ?? NaN);
  const rssKb = Number(/RSS (\d+)/.exec(out)?.[1] ?? NaN);
  return { states, seconds, errors, rssKb };
}

export function runShapesBench(o: { budgetMs: number; out: (s?: string) => void }): void {
  const out = o.out;
  out(heading(`7. Race shapes F x P x R: exhaustive DPOR (budget ${fixed(o.budgetMs / 1000, 0)} s each) beside Spin on bench/fault-vs-revoke.pml`));
  const haveSpin = spawnSync('spin', ['-V'], { encoding: 'utf8' }).status === 0 && spawnSync('gcc', ['--version']).status === 0;
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-spin-'));
  if (haveSpin) copyFileSync(PML, join(dir, 'fault-vs-revoke.pml'));
  const rows: string[][] = [];
  for (const [f, p, r] of SHAPES) {
    const scn = parseScenario(shapeScenario(f, p, r));
    const run = (states: boolean) => {
      const heap0 = process.memoryUsage().heapUsed;
      let heapPeak = heap0;
      const t0 = performance.now();
      const d = exploreDpor(scn, { states, maxMs: o.budgetMs, onExecution: () => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)) });
      return { d, secs: (performance.now() - t0) / 1000, heap: heapPeak - heap0 };
    };
    const verdict = (d: ExploreResult) => (d.counterexample ? `VIOLATION ${d.counterexample.invariant}` : d.complete ? 'exhaustive, no violation' : 'not exhausted');
    const plain = run(false), cached = run(true);
    const best = [plain, cached].filter((x) => x.d.complete).sort((a, b) => a.secs - b.secs)[0];
    const s = haveSpin ? spinRun(dir, f, p, r) : null;
    const spinCells = s === null ? ['-', '-', '-'] : typeof s === 'string' ? [s, '-', '-'] : [int(s.states), fixed(s.seconds, 2), s.errors ? `${s.errors} error(s)` : 'no error'];
    const ratio = s && typeof s !== 'string' && best ? `${fixed(best.secs / s.seconds, 1)}x` : '-';
    rows.push([
      `${f}x${p}x${r}`, verdict(plain.d), int(plain.d.executions), fixed(plain.secs, 2),
      verdict(cached.d), int(cached.d.executions), int(cached.d.states ?? 0), fixed(cached.secs, 2), mib(Math.max(plain.heap, cached.heap)),
      ...spinCells, ratio,
    ]);
  }
  rmSync(dir, { recursive: true, force: true });
  out(table(['<shape', '<DPOR', 'executions', 's', '<DPOR --states', 'executions', 'states', 's', 'heap growth', 'Spin states', 'Spin s', '<Spin', 'best/Spin time'], rows));
  if (!haveSpin) out('  (Spin column skipped: `spin` or `gcc` is not installed; on Debian: apt-get install spin)');
  out('  The explorer runs the whole v4 kernel path (locks, registration, per-VMA lock retry, find_pfn, zap) and');
  out('  checks every invariant after every step; Spin runs a hand abstraction of the same race (resv, memory_lock,');
  out('  status, PTEs, decode) with its own partial-order reduction and state hashing. Spin counts states, the');
  out('  explorer executions; the time ratio takes the faster complete explorer run, and only complete runs.');
}
