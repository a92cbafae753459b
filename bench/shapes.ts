// Section 7 of the benchmark: race shapes, explored exhaustively within a time budget, beside Spin
// on bench/fault-vs-revoke.pml (the same race abstracted to Promela) in the same run.
//  - fault-vs-revoke F x P x R: F faulting threads x P pages each x R COMMAND writes (off, on, ...)
//  - DMABUF C x P: C clients x P loads on an exported DMABUF's mmap vs COMMAND off, on, DMA_BUF_REVOKE
// Each shape runs in three modes: DPOR scheduling at every step (--no-atomic), DPOR with atomic
// blocks (what `check` does), and atomic blocks with state caching (--states). A mode that did not
// finish a shape is not run on the shapes that contain it. Prints figures and ratios; asserts
// nothing. Spin runs two models, coarse and faithful (bench/fault-vs-revoke.pml, -DFAITHFUL); its
// table is skipped with a note when `spin` or `gcc` is missing (Debian: apt-get install spin).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario } from '../src/scenario/loader.ts';
import { exploreDpor, type ExploreResult } from '../src/explore/explorer.ts';
import { defaultWorkers, exploreDporParallel } from '../src/explore/parallel.ts';
import { fixed, heading, int, mib, table } from './format.ts';

export const PML = fileURLToPath(new URL('./fault-vs-revoke.pml', import.meta.url));
// one thread of each target's pages and writes too: the target's executions grow as about its
// executions to the power of the threads (docs/model-decisions.md, "How the search grows")
export const SHAPES: Array<[number, number, number]> = [[1, 1, 2], [1, 2, 2], [2, 1, 2], [1, 3, 2], [2, 2, 2], [1, 2, 4], [1, 3, 4], [2, 2, 4], [3, 3, 4]];
export const DMABUF_SHAPES: Array<[number, number]> = [[1, 2], [2, 1], [2, 2]];

/**
 * A race shape as a scenario: one h100, the setup given (which maps `m`), `threads` loaders each
 * loading `pages` distinct 4 KiB pages of `m` (thread t pages t*P ..), and a `vmm` thread.
 */
function shape(o: { name: string; about: string[]; kernels?: string; setup: string[]; loader: string; threads: number; pages: number; vmm: string[] }): string {
  const lines = ['# yaml-language-server: $schema=../../schema/scenario.schema.json', `name: ${o.name}`, 'description: >', ...o.about.map((l) => `  ${l}`), ...(o.kernels ? [`kernels: ${o.kernels}`] : [])];
  lines.push('devices:', '  - { name: gpu0, profile: h100 }', 'setup:', '  - open: { path: /dev/vfio/devices/gpu0, as: dev }', ...o.setup.map((l) => `  - ${l}`), 'threads:');
  for (let t = 0; t < o.threads; t++) {
    lines.push(`  ${o.loader}${t}:`);
    for (let i = 0; i < o.pages; i++) lines.push(`    - load: { addr: m, offset: ${(t * o.pages + i) * 4096}, width: 4 }`);
  }
  lines.push('  vmm:', ...o.vmm.map((l) => `    - ${l}`));
  return lines.join('\n') + '\n';
}

/** The race as a scenario: a 64 KiB BAR0 mapping (4 KiB faults), thread f loads pages f*P .. f*P+P-1. */
export function shapeScenario(f: number, p: number, r: number): string {
  return shape({
    name: `fault-vs-revoke-${f}x${p}x${r}`,
    about: [
      `${f} thread(s) loading ${p} distinct 4 KiB page(s) each of one BAR0 mapping while a VMM writes COMMAND`,
      `${r} time(s) (memory off, on, ...). Written by bench/shapes.ts (section 7 of the benchmark).`,
    ],
    setup: ['mmap: { fd: dev, offset: 0, length: 64KiB, as: m }'],
    loader: 'f', threads: f, pages: p,
    vmm: Array.from({ length: r }, (_, i) => `config_write: { fd: dev, reg: COMMAND, value: ${i % 2 ? 2 : 0} }`),
  });
}

/** C clients of an exported DMABUF's mmap, client c loading pages c*P .., against off, on, DMA_BUF_REVOKE. */
export function dmabufShapeScenario(c: number, p: number): string {
  return shape({
    name: `dmabuf-mmap-vs-revoke-${c}x${p}`,
    about: [
      `${c} client(s) loading ${p} distinct 4 KiB page(s) each of an exported DMABUF's mmap while a VMM turns`,
      'memory off and on and then revokes the buffer for good. Written by bench/shapes.ts (section 7).',
    ],
    kernels: '[series-v4, series-v4-fixed, series-v6, series-v8]',
    setup: [
      'ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 0, ranges: [{ offset: 0, length: 64KiB }], as: buf }',
      'mmap: { fd: buf, offset: 0, length: 64KiB, as: m }',
    ],
    loader: 'c', threads: c, pages: p,
    vmm: ['config_write: { fd: dev, reg: COMMAND, value: 0 }', 'config_write: { fd: dev, reg: COMMAND, value: 2 }', 'ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [set], feature: DMA_BUF_REVOKE, dmabuf_fd: buf }'],
  });
}

export interface SpinRun {
  states: number;
  seconds: number;
  errors: number;
  rssKb: number;
  complete: boolean;
  why?: string;
  /** the first assertion pan found violated, as it prints it */
  assertion?: string;
}

/** The Promela models: the race abstracted to one handler call a load, or at the explorer's granularity. */
export const SPIN_MODELS = [
  { name: 'coarse', defs: [] as string[], about: 'one handler call a load' },
  { name: 'faithful', defs: ['-DFAITHFUL'], about: "the v4 handler's order attempts, faults again until the access lands, outcomes kept, the zap one step" },
] as const;

/** Spin's memory bound (MB) and time budget: a model too large for them is reported as not done, with its states so far. */
const SPIN_MEMLIM_MB = 8192;

/** Spin's search of one model of shape F x P x R, in `dir` (which holds a copy of PML). */
export function spinRun(dir: string, f: number, p: number, r: number, defs: readonly string[], budgetMs: number): SpinRun | string {
  const def = [...defs, `-DF=${f}`, `-DP=${p}`, `-DR=${r}`];
  try {
    execFileSync('spin', ['-a', ...def, 'fault-vs-revoke.pml'], { cwd: dir, stdio: 'pipe' });
    execFileSync('gcc', ['-O2', '-DSAFETY', `-DMEMLIM=${SPIN_MEMLIM_MB}`, '-o', 'pan', 'pan.c'], { cwd: dir, stdio: 'pipe' });
  } catch (e) {
    return `spin/gcc failed: ${(e as Error).message.split('\n')[0]}`;
  }
  const t0 = performance.now();
  // GNU timeout kills pan too (a timeout of spawnSync would kill only /usr/bin/time, and leave pan
  // running); it exits 137 when its KILL ended the run
  const run = spawnSync('timeout', ['-s', 'KILL', `${Math.ceil(budgetMs / 1000)}`, '/usr/bin/time', '-f', 'RSS %M', './pan', '-m100000'], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  if (run.error) return `pan failed: ${run.error.message}`;
  const out = (run.stdout ?? '') + (run.stderr ?? '');
  // pan prints a progress line a million states; a run cut short has only those
  const progress = [...out.matchAll(/States=\s*([\d.e+]+)/g)].map((m) => Number(m[1]));
  const final = /([\d.e+]+) states, stored/.exec(out)?.[1];
  const states = final !== undefined ? Number(final) : (progress[progress.length - 1] ?? 0);
  const errors = Number(/errors: (\d+)/.exec(out)?.[1] ?? 0);
  const rssKb = Number(/RSS (\d+)/.exec(out)?.[1] ?? NaN);
  const assertion = /assertion violated\s+(.*?) \(at depth/.exec(out)?.[1];
  const why = run.status === 124 || run.status === 137 ? `time budget (${fixed(budgetMs / 1000, 0)} s)` : /reached -DMEMLIM bound/.test(out) ? `memory bound (${SPIN_MEMLIM_MB / 1024} GiB)` : /Search not completed/.test(out) && !errors ? 'search not completed' : undefined;
  return { states, seconds, errors, rssKb, complete: !why, why, assertion };
}

const MODES = [
  { name: 'every step', opts: { atomic: false, states: false } },
  { name: 'atomic blocks', opts: { atomic: true, states: false } },
  { name: 'atomic + states', opts: { atomic: true, states: true } },
] as const;

interface Run { d: ExploreResult; secs: number; heap: number }

/** The kernel the shapes run on: the series as posted, the code the Spin model abstracts. */
const KERNEL = 'series-v4';

/** Explore `yaml` in each mode not yet known to fail on a smaller shape; null where skipped. */
/**
 * `check`'s own mode (atomic blocks and states) gets this many times the budget, so that the shapes
 * the targets name can show whether, and in how long, they finish.
 */
const CHECK_MODE_BUDGET = 3;

function runModes(yaml: string, budgetMs: number, skip: boolean[]): Array<Run | null> {
  const scn = parseScenario(yaml);
  return MODES.map((m, i) => {
    if (skip[i]) return null;
    const heap0 = process.memoryUsage().heapUsed;
    let heapPeak = heap0;
    const t0 = performance.now();
    const d = exploreDpor(scn, { ...m.opts, kernel: KERNEL, maxMs: i === MODES.length - 1 ? budgetMs * CHECK_MODE_BUDGET : budgetMs, onExecution: () => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)) });
    const run = { d, secs: (performance.now() - t0) / 1000, heap: heapPeak - heap0 };
    if (!d.complete && !d.counterexample) skip[i] = true;
    return run;
  });
}
const cells = (x: Run | null): string[] => {
  if (!x) return ['(skipped)', '-', '-'];
  const v = x.d.counterexample ? `VIOLATION ${x.d.counterexample.invariant}` : x.d.complete ? `${int(x.d.executions)}` : `> ${int(x.d.executions)} (not done)`;
  return [v, x.d.states !== undefined ? int(x.d.states) : '-', fixed(x.secs, 2)];
};
const best = (runs: Array<Run | null>) => runs.filter((x): x is Run => !!x && x.d.complete).sort((a, b) => a.secs - b.secs)[0];
const header = ['<shape', ...MODES.flatMap((m) => [`<${m.name}: executions`, 'states', 's']), 'peak heap growth'];

export async function runShapesBench(o: { budgetMs: number; out: (s?: string) => void }): Promise<void> {
  const out = o.out;
  out(heading(`7. Race shapes, exhaustive DPOR in three modes (budget ${fixed(o.budgetMs / 1000, 0)} s each, ${fixed((o.budgetMs * CHECK_MODE_BUDGET) / 1000, 0)} s for check's atomic + states), beside Spin on bench/fault-vs-revoke.pml`));
  const targets: string[] = [];
  const haveSpin = spawnSync('spin', ['-V'], { encoding: 'utf8' }).status === 0 && spawnSync('gcc', ['--version']).status === 0;
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-spin-'));
  if (haveSpin) copyFileSync(PML, join(dir, 'fault-vs-revoke.pml'));
  const rows: string[][] = [];
  const spinRows: string[][] = [];
  const skip = MODES.map(() => false);
  /** check's mode's executions of one thread, by pages x writes */
  const single = new Map<string, number>();
  for (const [f, p, r] of SHAPES) {
    const runs = runModes(shapeScenario(f, p, r), o.budgetMs, skip);
    rows.push([`${f}x${p}x${r}`, ...runs.flatMap(cells), mib(Math.max(0, ...runs.map((x) => x?.heap ?? 0)))]);
    const b = best(runs);
    // each Spin model gets what check's mode got; the time ratio only where both finished
    const spins = SPIN_MODELS.map((m) => (haveSpin ? spinRun(dir, f, p, r, m.defs, o.budgetMs * CHECK_MODE_BUDGET) : null));
    const ratioTo = (s: SpinRun | string | null) => (s && typeof s !== 'string' && s.complete && b ? `${fixed(b.secs / s.seconds, 1)}x` : '-');
    spinRows.push([`${f}x${p}x${r}`, b ? fixed(b.secs, 2) : 'not done', ...spins.flatMap((s) => [...spinCells(s), ratioTo(s)])]);
    const mine = runs[runs.length - 1];
    if (f === 1 && mine?.d.complete) single.set(`${p}x${r}`, mine.d.executions);
    // a target not finished: how far it is, from one thread's executions on the same pages and writes
    const n1 = single.get(`${p}x${r}`);
    const far = f > 1 && n1 !== undefined && mine && !mine.d.complete ? `; one thread took ${int(n1)}, so about ${int(n1)}^${f} = ${n1 ** f >= 1e6 ? (n1 ** f).toExponential(1) : int(n1 ** f)} executions in all` : '';
    if (`${f}x${p}x${r}` === '2x2x4') targets.push(`2x2x4 exhaustive under 60 s: ${verdict(mine)}${far}`);
    if (`${f}x${p}x${r}` === '3x3x4') {
      const vs = SPIN_MODELS.map((m, i) => `${m.name} Spin ${spinVerdict(spins[i])}${ratioTo(spins[i]) !== '-' ? `, ratio ${ratioTo(spins[i])}` : ''}`).join('; ');
      targets.push(`3x3x4 exhaustive within 10x Spin's time: ${verdict(mine)}${far}${haveSpin ? ` (${vs})` : ''}`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  out('  fault-vs-revoke F x P x R: F threads loading P pages each of one BAR0 mapping, against R COMMAND writes');
  out(table(header, rows));
  if (haveSpin) {
    out(`  Beside Spin on bench/fault-vs-revoke.pml, two models of the same race (${fixed(SPIN_MEMLIM_MB / 1024, 0)} GiB and ${fixed((o.budgetMs * CHECK_MODE_BUDGET) / 1000, 0)} s each):`);
    for (const m of SPIN_MODELS) out(`    ${m.name}: ${m.about}`);
    out(table(['<shape', 'fastest explorer s', ...SPIN_MODELS.flatMap((m) => [`${m.name}: states`, 's', 'peak RSS', '<verdict', 'explorer/Spin time'])], spinRows));
  } else out('  (Spin columns skipped: `spin` or `gcc` is not installed; on Debian: apt-get install spin)');
  const drows: string[][] = [];
  const dskip = MODES.map(() => false);
  for (const [c, p] of DMABUF_SHAPES) {
    const runs = runModes(dmabufShapeScenario(c, p), o.budgetMs, dskip);
    drows.push([`${c}x${p}`, ...runs.flatMap(cells), mib(Math.max(0, ...runs.map((x) => x?.heap ?? 0)))]);
    if (`${c}x${p}` === '2x2') targets.push(`DMABUF 2x2 exhaustive under 60 s: ${verdict(runs[runs.length - 1])}`);
  }
  out('  DMABUF C x P: C clients loading P pages each of an exported DMABUF\'s mmap, against COMMAND off, on, DMA_BUF_REVOKE (no Spin model)');
  out(table(header, drows));
  out(`  The explorer runs the whole ${KERNEL} kernel path (locks, registration, per-VMA lock retry, find_pfn, zap) and`);
  out('  checks every invariant after every step; Spin runs hand abstractions of the same race (resv, memory_lock,');
  out('  status, PTEs, decode) with its own partial-order reduction and state hashing: the coarse one makes one');
  out('  handler call a load, the faithful one the calls the explorer tells apart. Spin counts every state, the');
  out('  explorer executions (and, with --states, the states it stored at block boundaries); the time ratio');
  out('  takes the fastest complete explorer run, and only complete runs.');
  // the same search as jobs on worker threads sharing one state store (check --workers)
  const workers = Math.min(2, defaultWorkers());
  if (workers > 1) {
    const t0 = performance.now();
    const w = await exploreDporParallel(parseScenario(shapeScenario(2, 2, 4)), workers, { kernel: KERNEL, atomic: true, states: true, maxMs: o.budgetMs * CHECK_MODE_BUDGET });
    targets.push(`2x2x4 on ${workers} workers sharing one state store: ${verdict({ d: w, secs: (performance.now() - t0) / 1000, heap: 0 })}`);
  }
  out('  Targets (check\'s mode, this run):');
  for (const t of targets) out(`    ${t}`);
}

const spinCells = (s: SpinRun | string | null): string[] =>
  s === null ? ['-', '-', '-', '-'] : typeof s === 'string' ? ['-', '-', '-', s] : [int(s.states), fixed(s.seconds, 2), Number.isFinite(s.rssKb) ? mib(s.rssKb * 1024) : '-', s.errors ? `${s.errors} error(s)` : s.complete ? 'no error' : `not done: ${s.why}`];
const spinVerdict = (s: SpinRun | string | null): string =>
  s === null ? 'not run' : typeof s === 'string' ? s : s.complete ? `${fixed(s.seconds, 1)} s, ${int(s.states)} states` : `not done in ${fixed(s.seconds, 0)} s (${s.why}, ${int(s.states)} states)`;

/** How check's mode did on a target shape: its time when it finished, else that it did not. */
function verdict(x: Run | null | undefined): string {
  if (!x) return 'not run (a smaller shape did not finish)';
  if (x.d.counterexample) return `a violation (${x.d.counterexample.invariant})`;
  return x.d.complete ? `${fixed(x.secs, 1)} s, ${int(x.d.executions)} executions, ${int(x.d.states ?? 0)} states` : `not finished in ${fixed(x.secs, 0)} s (${int(x.d.executions)} executions)`;
}
