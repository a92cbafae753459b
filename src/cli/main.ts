// The vfio-sim command.
import { Command, InvalidArgumentError, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { didYouMean, kernelFor, loadDeviceProfiles, loadScenarioFile, ScenarioError } from '../scenario/loader.ts';
import { formatTrace, runScenario } from '../scenario/report.ts';
import { allProfiles, type Profile } from '../kernel/pci/profiles.ts';
import { KERNELS, DEFAULT_KERNEL } from '../kernel/variants.ts';
import { deviceJsonSchema, scenarioJsonSchema } from '../scenario/json-schema.ts';
import { OUTPUT_SCHEMAS, outputJsonSchema, type OutputName } from './output-schema.ts';

/** The JSON Schemas `vfio-sim schema NAME` prints (schema/NAME.schema.json). */
const SCHEMAS = ['scenario', 'device', ...Object.keys(OUTPUT_SCHEMAS).map((n) => `${n}-output`)];
import { KconfigError, resolveKconfig, USER_SYMBOLS } from '../kernel/kconfig.ts';
import { UnknownKernelError } from '../kernel/kernel.ts';
import { readFileSync } from 'node:fs';
import { perfettoTrace } from '../report/perfetto.ts';
import { htmlReport, reportData } from '../report/html.ts';
import { serve } from '../report/serve.ts';
import { exploreShard, mergeShards, parseShard, searchId, ShardError, type ShardDoc } from '../explore/shard.ts';
import { exploreBounded, exploreDfs, exploreDpor, exploreDporSplit, mergeJobResults, multinomial, replay, sci, STRATEGIES, type ExploreResult, type Progress } from '../explore/explorer.ts';
import { DEFAULT_SPLIT_DEPTH, defaultWorkers, exploreDporParallel } from '../explore/parallel.ts';
import { formatCounterexample, formatSummary, formatTrace as formatExecTrace, traceJson } from '../explore/report.ts';
import { decodeSchedule, encodeSchedule, ScheduleError } from '../explore/schedule.ts';
import { findMutant, MUTANTS } from '../explore/mutants.ts';
import type { Scenario } from '../scenario/loader.ts';
import { registerDiff } from './diff.ts';
import { devicesOpt, ScenarioFilesError, scenarioFiles, writeOutput } from './options.ts';
import { camelKeys, printJson, snakeKeys } from './json.ts';
import { registerConform } from './conform.ts';
import { twinOf, type Twin } from '../conform/twins.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_SCENARIO = join(ROOT, 'scenarios', 'quickstart.yaml');

/** Exit 2 with the message for anything wrong with the input; never a stack trace. */
function invalid(e: unknown): never {
  if (e instanceof ScenarioError || e instanceof KconfigError || e instanceof UnknownKernelError || e instanceof ScheduleError || e instanceof UsageError || e instanceof ShardError || e instanceof ScenarioFilesError) {
    process.stderr.write(`vfio-sim: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

class UsageError extends Error {}

function scenarioFilesOr(args: string[]): string[] {
  try {
    return scenarioFiles(args);
  } catch (e) {
    return invalid(e);
  }
}

function mutantOpt(m?: string): string | undefined {
  if (m === undefined) return undefined;
  const mu = findMutant(m);
  if (!mu) throw new UsageError(`unknown mutant ${m}${didYouMean(m, MUTANTS.map((x) => x.id))} (see vfio-sim mutants)`);
  return mu.id;
}

/**
 * The kernel a command runs: --kernel; else, with a mutant, the kernel whose code the mutant changes
 * (when the scenario's kernels: allows it); else the scenario's choice (kernelFor).
 */
function kernelOf(scn: Scenario, asked: string | undefined, mutant: string | undefined): string {
  const mk = asked === undefined && mutant ? findMutant(mutant)?.kernel : undefined;
  return mk && scn.kernels.includes(mk) ? mk : kernelFor(scn, asked);
}

/** A kernel name, as --kernel takes it: one of KERNELS, or a usage error that suggests the nearest. */
export function kernelArg(v: string): string {
  if (Object.hasOwn(KERNELS, v)) return v;
  throw new InvalidArgumentError(`unknown kernel ${v}${didYouMean(v, Object.keys(KERNELS))} (known: ${Object.keys(KERNELS).join(', ')})`);
}

/**
 * A live progress line on a terminal (stderr; cli-progress), nothing otherwise: executions and their
 * rate, distinct states, what is known of the work left (DPOR's choices pending on its stack; with
 * jobs or a planned count, a bar), the depth reached and the time.
 */
type ProgressLine = ((p: Progress) => void) & { stop(): void };
function progressLine(enabled: boolean, json = false): ProgressLine | undefined {
  if (json) {
    // --progress-json (vfio-sim serve reads it): one JSON document a line on stderr, a few a second
    let last = 0;
    const line = ((p: Progress) => {
      if (Date.now() - last < 250) return;
      last = Date.now();
      process.stderr.write(JSON.stringify({ progress: p }) + '\n');
    }) as ProgressLine;
    line.stop = () => {};
    return line;
  }
  if (!enabled) return undefined;
  let bar: SingleBar | null = null;
  const line = ((p: Progress) => {
    const total = p.jobs?.[1] ?? p.total;
    const payload = {
      executions: p.executions,
      rate: p.elapsedMs ? Math.round((p.executions * 1000) / p.elapsedMs) : 0,
      states: p.states !== undefined ? `, ${p.states} states` : '',
      pending: p.pending !== undefined ? `, ${p.pending} choice(s) pending` : '',
      depth: p.depth,
      secs: (p.elapsedMs / 1000).toFixed(1),
    };
    if (!bar) {
      const what = '{executions} executions, {rate}/s{states}{pending}, depth {depth}, {secs} s';
      bar = new SingleBar({ stream: process.stderr, format: total ? `  {bar} {value}/{total} ${p.jobs ? 'jobs' : 'runs'} | ${what}` : `  ${what}`, barsize: 20, hideCursor: true, clearOnComplete: true, fps: 10 }, Presets.shades_classic);
      bar.start(total ?? 0, 0, payload);
    }
    bar.update(p.jobs?.[0] ?? p.executions, payload);
  }) as ProgressLine;
  line.stop = () => bar?.stop();
  return line;
}

interface CheckOpts {
  workers?: string;
  progressJson?: boolean;
  perfetto?: string;
  html?: string;
  json?: boolean;
  kernel?: string;
  mutant?: string;
  preemptions?: string;
  random?: string;
  seed: string;
  depth: string;
  maxExecutions?: string;
  maxSeconds?: string;
  shard?: string;
  states?: boolean;
  atomic?: boolean;
  naive?: boolean;
  compare: boolean;
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number, got ${v}`);
  return n;
}
/** A whole number of at least `min` (counts, bounds, seeds). */
function whole(flag: string, v: string, min: number): number {
  const n = Number(v);
  if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag}: expected a whole number${min > 0 ? ` of at least ${min}` : min === 0 ? ' (0 or more)' : ''}, got ${v}`);
  return n;
}

/**
 * The exit code of an exploration: 1 a violation was found; 0 every interleaving was explored
 * and none breaks an invariant; 3 nothing was found but the search was cut short (an execution cap
 * or time budget) or was bounded or randomized, so it proves nothing about the rest.
 */
export function verdictExit(r: ExploreResult): 0 | 1 | 3 {
  if (r.counterexample) return 1;
  return r.complete && !/^(bounded|pct)/.test(r.mode) ? 0 : 3;
}

export async function check(file: string, o: CheckOpts): Promise<{ scn: Scenario; kernel: string; mutant?: string; result: ExploreResult; text: string; json: unknown }> {
  const scn = loadScenarioFile(file);
  const mutant = mutantOpt(o.mutant);
  const kernel = kernelOf(scn, o.kernel, mutant);
  o = { ...o, kernel };
  const maxExecutions = o.maxExecutions !== undefined ? positive('--max-executions', o.maxExecutions) : undefined;
  const maxMs = o.maxSeconds !== undefined ? positive('--max-seconds', o.maxSeconds) * 1000 : undefined;
  // the reductions of the exhaustive search (on unless --no-states, --no-atomic); the others ignore them
  const base = { kernel: o.kernel, mutant, maxExecutions, maxMs, states: o.states !== false, atomic: o.atomic !== false, progress: progressLine(!o.json && !!process.stderr.isTTY, !!o.progressJson) };
  if (o.shard !== undefined) {
    if (o.random || o.preemptions !== undefined || o.naive) throw new UsageError('--shard splits the exhaustive DPOR search; it does not combine with --random, --preemptions or --naive');
    const spec = parseShard(o.shard);
    const doc = exploreShard(scn, file, spec, DEFAULT_SPLIT_DEPTH, { ...base, progress: undefined, kernel, mutant: mutant ?? null });
    const r = { ...mergeJobResults(doc.jobs.map((j) => j.result), Date.now()), elapsedMs: doc.elapsed_ms, mode: `dpor, shard ${spec.index}/${spec.count}` };
    return { scn, kernel, mutant, result: r, text: JSON.stringify(snakeKeys(doc), null, 2), json: doc };
  }
  let r: ExploreResult;
  if (o.random) r = STRATEGIES.pct(scn, { ...base, runs: whole('--random', o.random, 1), seed: whole('--seed', o.seed, -(2 ** 31)), depth: whole('--depth', o.depth, 1) });
  else if (o.preemptions !== undefined) r = STRATEGIES.bounded(scn, { ...base, preemptions: whole('--preemptions', o.preemptions, 0) });
  else if (o.naive) r = STRATEGIES.naive(scn, base);
  else {
    // exhaustive DPOR. One search by default: one state store and one access log for all of it.
    // --workers N splits it into the jobs shards run, on N threads sharing one state store (one
    // after another with --workers 1): the same verdict, executions that depend on timing
    const workers = o.workers === 'auto' ? defaultWorkers() : Number(o.workers ?? 0);
    if (o.workers !== undefined && (!Number.isInteger(workers) || workers < 1)) throw new UsageError(`--workers: expected a count or auto, got ${o.workers}`);
    r = workers > 1 ? await exploreDporParallel(scn, workers, base) : workers === 1 ? { ...exploreDporSplit(scn, DEFAULT_SPLIT_DEPTH, base), mode: 'dpor' } : exploreDpor(scn, base);
  }
  base.progress?.stop();
  const extra: string[] = [];
  let naive: ExploreResult | null = null;
  r = fewestPreemptions(scn, r, kernel, mutant, extra);
  if (!r.counterexample && r.mode === 'dpor' && r.complete && o.compare) {
    // a measurement, not a search: at most 2 s or 20,000 executions, so it never doubles a long check
    naive = exploreDfs(scn, { kernel, mutant, maxExecutions: 20000, maxMs: 2000 });
    const bound = r.threadSteps ? `; about ${sci(multinomial(r.threadSteps))} by the multinomial of the threads' longest runs, ${r.threadSteps.join('+')} steps` : '';
    extra.push(naive.complete
      ? `naive enumeration: ${naive.executions} executions (measured): DPOR explored ${(naive.executions / Math.max(1, r.executions)).toFixed(1)}x fewer`
      : `naive enumeration: more than ${naive.executions} executions (stopped at the cap or the time budget${bound}); DPOR needed ${r.executions}`);
  }
  return { scn, kernel, mutant, result: r, ...present(scn, file, kernel, mutant, r, extra, naive) };
}

/**
 * A counterexample with preemptions: look for one with fewer (CHESS iterative bounding), so that
 * check and merge print the same, simplest one. Says what it did in `extra`.
 */
function fewestPreemptions(scn: Scenario, r: ExploreResult, kernel: string, mutant: string | undefined, extra: string[]): ExploreResult {
  if (!r.counterexample || r.counterexample.preemptions === 0) return r;
  const b = exploreBounded(scn, { preemptions: r.counterexample.preemptions - 1, kernel, mutant, maxExecutions: 20000 });
  if (!b.counterexample || b.counterexample.preemptions >= r.counterexample.preemptions) return r;
  extra.push(`counterexample minimized from ${r.counterexample.preemptions} to ${b.counterexample.preemptions} preemption(s) by iterative preemption bounding`);
  return { ...r, counterexample: b.counterexample };
}

/** The text and JSON of an exploration's verdict (check and merge), with the counterexample replayed for its trace. */
function present(scn: Scenario, file: string, kernel: string, mutant: string | undefined, r: ExploreResult, extra: string[], naive: ExploreResult | null = null): { text: string; json: unknown } {
  const cmd = `vfio-sim replay ${file}${kernel !== DEFAULT_KERNEL ? ` --kernel ${kernel}` : ''}${mutant ? ` --mutant ${mutant}` : ''}`;
  let text = formatSummary(scn, r, extra);
  let ce: unknown = null;
  if (r.counterexample) {
    const { ex } = replay(scn, r.counterexample.schedule, { kernel, mutant });
    text += '\n' + formatCounterexample(scn, r, ex, cmd);
    ce = { ...r.counterexample, schedule: encodeSchedule(r.counterexample.schedule), replay: `${cmd} --schedule '${encodeSchedule(r.counterexample.schedule)}'`, steps: ex.run.steps, violations: ex.run.k.violations, trace: traceJson(ex) };
  }
  const json = {
    scenario: scn.name, kernel, ...(mutant ? { mutant } : {}), mode: r.mode, executions: r.executions, sleep_blocked: r.sleepBlocked,
    steps: r.steps, max_depth: r.maxDepth, complete: r.complete, elapsed_ms: r.elapsedMs,
    ...(r.states !== undefined ? { states: r.states, states_cut: r.statesCut, ...(r.statesStores ? { states_stores: r.statesStores } : {}) } : {}),
    ...(r.restarts !== undefined ? { atomic_restarts: r.restarts } : {}),
    ...(naive ? { naive_executions: naive.executions, naive_complete: naive.complete } : {}),
    violation: ce,
  };
  return { text, json };
}

/** --perfetto OUT: the trace of one interleaving of `scn` as Trace Event JSON (src/report/perfetto.ts). */
function writePerfetto(out: string, scn: Scenario, kernel: string, mutant: string | undefined, schedule?: string[]): void {
  writeOutput('--perfetto', out, JSON.stringify(perfettoTrace(scn, { kernel, mutant, schedule })) + '\n', 'trace', 'open it in ui.perfetto.dev or chrome://tracing');
}
/** --html OUT: the self-contained report page of one run or interleaving (src/report/html.ts). */
function writeHtml(out: string, scn: Scenario, opts: Parameters<typeof reportData>[1]): void {
  writeOutput('--html', out, htmlReport(reportData(scn, opts)), 'report');
}
const htmlOpt = () => new Option('--html <out.html>', 'also write a self-contained HTML report that steps through the run');
const perfettoOpt = () => new Option('--perfetto <out.json>', 'also write the trace (Trace Event JSON) for ui.perfetto.dev or chrome://tracing');

/** Each command's help ends with examples and its exit codes; the program's with an overview. */
const HELP: Record<string, { examples: string[]; exits?: string }> = {
  '': {
    examples: ['vfio-sim run                                   the bundled quickstart', 'vfio-sim run scenarios/races --all-kernels      every race scenario on every kernel it lists', 'vfio-sim check scenarios/races/fault-vs-revoke.yaml', 'vfio-sim check scenarios/races/fault-vs-revoke.yaml --mutant no-zap', 'vfio-sim diff scenarios/bar2-memory-disable.yaml --kernels series-v4,series-v8'],
    exits: '0 pass, 1 a finding (a violation, a failed expectation, an unexpected difference), 2 invalid input or usage, 3 incomplete (a search cut short, bounded or randomized)',
  },
  run: { examples: ['vfio-sim run scenarios/quickstart.yaml --final', 'vfio-sim run scenarios --json > results.json', 'vfio-sim run my.yaml --kernel series-v4 --mutant M1'], exits: '0 every expectation met and no unexpected violation, 1 otherwise, 2 invalid scenario (file, line and field named)' },
  check: { examples: ['vfio-sim check scenarios/races/fault-vs-revoke.yaml', 'vfio-sim check scenarios/races --max-seconds 60', 'vfio-sim check my.yaml --preemptions 2', 'vfio-sim check my.yaml --shard 1/4 --json > shard1.json'], exits: '0 every interleaving explored and none breaks an invariant, 1 a violation (with a replayable schedule), 2 invalid input, 3 nothing found but not every interleaving was explored' },
  replay: { examples: ["vfio-sim replay scenarios/races/fault-vs-revoke.yaml --mutant no-zap --schedule 'cpu:24,vmm:13'"], exits: '0 no violation, 1 a violation or failed expectation, 2 invalid input or a schedule the scenario cannot follow' },
  merge: { examples: ['vfio-sim merge shard1.json shard2.json shard3.json shard4.json'], exits: 'as check' },
  diff: { examples: ['vfio-sim diff scenarios/bar2-memory-disable.yaml', 'vfio-sim diff my.yaml --kernels series-v4,series-v8 --check', 'vfio-sim diff scenarios/ --kernels series-v4,series-v8     every bundled scenario: a line each, the reviewed differences'], exits: '0 every difference is an expected one, 1 an unexpected difference, 2 invalid input' },
  conform: { examples: ['vfio-sim conform', 'vfio-sim conform scenarios/conform/command-off-on-pmd.yaml --json'], exits: '0 every difference is listed with its reason, 1 otherwise, 2 invalid input' },
  devices: { examples: ['vfio-sim devices', 'vfio-sim devices --devices ./devices --json'] },
  schema: { examples: ['vfio-sim schema > scenario.schema.json', 'vfio-sim schema check-output'] },
};
function addExamples(program: Command): void {
  for (const [name, h] of Object.entries(HELP)) {
    const cmd = name ? program.commands.find((c) => c.name() === name) : program;
    cmd?.addHelpText('after', ['', 'Examples:', ...h.examples.map((e) => `  $ ${e}`), ...(h.exits ? ['', `Exit codes: ${h.exits}`] : [])].join('\n'));
  }
}

export function main(argv: string[]): void {
  const program = new Command();
  // usage errors (unknown commands and options, missing arguments) exit 2 like invalid input, not 1
  // like a finding; help and --version exit 0
  program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  // --devices on any command: its device files are profiles before the command reads a scenario
  program.hook('preAction', (_, cmd) => {
    const dir = cmd.opts().devices as string | undefined;
    if (dir === undefined) return;
    try {
      loadDeviceProfiles(dir);
    } catch (e) {
      invalid(e);
    }
  });
  program.name('vfio-sim').description('An executable model of Linux VFIO-PCI BAR mmap through DMABUFs.').version(version).showHelpAfterError();
  const kernelOpt = () => new Option('--kernel <name>', `the modelled kernel: ${Object.keys(KERNELS).join(', ')} (default ${DEFAULT_KERNEL}, or the first the scenario lists in kernels: when that is not among them; with --mutant, the kernel the mutant changes)`).argParser(kernelArg);

  program
    .command('run')
    .description('run scenarios and print every step, fault and finding (default: the bundled quickstart); with several files or a directory, a line each and a summary')
    .argument('[files...]', 'scenario YAML files, or directories of them')
    .option('--json', 'print the result as one JSON document (an array of them for several runs)')
    .addOption(kernelOpt())
    .option('--all-kernels', 'run each scenario on every kernel its kernels: lists (all kernels if it lists none)')
    .option('--mutant <name>', 'run a named design variant')
    .option('--final', 'also print the final state (page tables, DMABUFs, devices)')
    .addOption(devicesOpt())
    .addOption(perfettoOpt())
    .addOption(htmlOpt())
    .action((files: string[], o: { json?: boolean; kernel?: string; allKernels?: boolean; mutant?: string; final?: boolean; perfetto?: string; html?: string }) => {
      if (o.allKernels && o.kernel) invalid(new UsageError('--all-kernels and --kernel do not combine'));
      const paths = scenarioFilesOr(files.length ? files : [DEFAULT_SCENARIO]);
      // a trace or a page shows one run: refuse more before running any
      for (const [flag, set] of [['--perfetto', o.perfetto], ['--html', o.html]] as const)
        if (set && (paths.length > 1 || o.allKernels)) invalid(new UsageError(`${flag} shows one run: name one scenario (and not --all-kernels)`));
      const runs: Array<{ file: string; scn: Scenario; result: ReturnType<typeof runScenario>['result'] }> = [];
      try {
        const mutant = mutantOpt(o.mutant);
        for (const file of paths) {
          const scn = loadScenarioFile(file);
          for (const kernel of o.allKernels ? scn.kernels : [kernelOf(scn, o.kernel, mutant)]) runs.push({ file, scn, result: runScenario(scn, { kernel, mutant }).result });
        }
      } catch (e) {
        invalid(e);
      }
      const exit = Math.max(...runs.map((r) => r.result.exit));
      if (o.perfetto) {
        writePerfetto(o.perfetto, runs[0].scn, runs[0].result.kernel, runs[0].result.mutant);
      }
      if (o.html) {
        const { scn, result } = runs[0];
        writeHtml(o.html, scn, { kind: 'run', kernel: result.kernel, mutant: result.mutant, granularity: 'op', verdict: result.exit ? `FAIL: ${result.problems.join('; ')}` : 'PASS: every expectation met' });
      }
      if (runs.length === 1) {
        const { scn, result } = runs[0];
        if (o.json) printJson(result);
        else {
          process.stdout.write(formatTrace(scn, result, process.stdout.isTTY) + '\n');
          if (o.final) printJson(result.final);
          for (const p of result.problems) process.stderr.write(`  ${p}\n`);
        }
      } else if (o.json) printJson(runs.map((r) => ({ file: r.file, ...r.result })));
      else {
        for (const { file, result } of runs) {
          process.stdout.write(`${result.exit ? 'FAIL' : 'PASS'}  ${file}  (${result.kernel}${result.mutant ? `, mutant ${result.mutant}` : ''}): ${result.steps.length} step(s)${result.violations.length ? `, ${result.violations.length} finding(s)` : ''}\n`);
          for (const p of result.problems) process.stdout.write(`        ${p}\n`);
        }
        const failed = runs.filter((r) => r.result.exit).length;
        process.stdout.write(`${runs.length - failed} passed, ${failed} failed (${runs.length} run(s) of ${paths.length} scenario(s))\n`);
      }
      process.exitCode = exit;
    });

  program
    .command('check')
    .description('explore the interleavings of a scenario\'s threads and check every invariant; with several files or a directory, a verdict each and a summary')
    .argument('<files...>', 'scenario YAML files, or directories of them')
    .option('--json', 'print the result as one JSON document (no progress line)')
    .addOption(kernelOpt())
    .option('--mutant <name>', 'explore a named design variant (see vfio-sim mutants)')
    .option('--preemptions <k>', 'bounded: every schedule with at most K preemptions (CHESS iterative bounding)')
    .option('--random <n>', 'randomized: N PCT runs')
    .option('--seed <s>', 'seed for --random', '1')
    .option('--depth <d>', 'PCT bug depth for --random', '3')
    .option('--naive', 'exhaustive without partial-order reduction')
    .option('--no-compare', 'do not measure the naive enumeration after an exhaustive DPOR run')
    .option('--max-executions <n>', 'stop after N executions (then exit 3: not every interleaving was explored)')
    .option('--max-seconds <s>', 'stop after S seconds (then exit 3)')
    .option('--no-states', 'exhaustive DPOR without state caching (by default an execution stops at a state explored before; see README)')
    .option('--no-atomic', 'exhaustive DPOR without atomic blocks: a scheduling point at every step (see README)')
    .option('--shard <i/N>', 'exhaustive DPOR: run the I-th of N deterministic shares and print its JSON document for `vfio-sim merge`')
    .option('--workers <n>', 'split the exhaustive DPOR into jobs on N worker threads ("auto": one per core) sharing one state store; same verdict as one search')
    .addOption(perfettoOpt())
    .addOption(htmlOpt())
    .addOption(devicesOpt())
    .addOption(new Option('--progress-json', 'progress as JSON lines on stderr (for tools)').hideHelp())
    .action(async (files: string[], o: CheckOpts) => {
      const paths = scenarioFilesOr(files);
      // these explore or show one scenario: refuse more before exploring any
      for (const [flag, set] of [['--shard', o.shard !== undefined], ['--perfetto', !!o.perfetto], ['--html', !!o.html]] as const)
        if (set && paths.length > 1) invalid(new UsageError(`${flag} works on one scenario; name one file`));
      const outs: Array<{ file: string; scn: Scenario; kernel: string; mutant?: string; result: ExploreResult; text: string; json: unknown }> = [];
      for (const file of paths) {
        try {
          // the naive comparison is a measurement for one scenario, not for a batch
          outs.push({ file, ...(await check(file, paths.length > 1 ? { ...o, compare: false } : o)) });
        } catch (e) {
          invalid(e);
        }
        if (paths.length === 1) break;
        const { result } = outs.at(-1)!;
        if (!o.json) process.stdout.write(`${['PASS', 'FAIL', '', 'INCOMPLETE'][verdictExit(result)]}  ${file}: ${result.counterexample ? `${result.counterexample.invariant}: ${result.counterexample.message}` : `${result.executions} execution(s)${result.states !== undefined ? `, ${result.states} state(s)` : ''}, ${(result.elapsedMs / 1000).toFixed(2)} s`}\n`);
      }
      if (o.perfetto) {
        const { result, scn, kernel, mutant } = outs[0];
        if (result.counterexample) writePerfetto(o.perfetto, scn, kernel, mutant, result.counterexample.schedule);
        else process.stderr.write(`no counterexample: no trace written to ${o.perfetto} (vfio-sim run --perfetto traces the round-robin order)\n`);
      }
      if (o.html) {
        const { result, scn, kernel, mutant } = outs[0];
        const ce = result.counterexample;
        // a counterexample step by step; otherwise the run's own order, with the verdict
        writeHtml(o.html, scn, ce ? { kind: 'check', kernel, mutant, schedule: ce.schedule, granularity: 'step', verdict: `VIOLATION ${ce.invariant}: ${ce.message}` } : { kind: 'check', kernel, mutant, granularity: 'op', verdict: result.complete ? 'no violation: every interleaving explored (shown: the round-robin order)' : 'no violation found, but the search was cut short (shown: the round-robin order)' });
      }
      if (paths.length === 1) {
        const out = outs[0];
        if (o.json) printJson(out.json);
        else process.stdout.write(out.text + '\n');
        process.exitCode = verdictExit(out.result);
        return;
      }
      if (o.json) printJson(outs.map((x) => ({ file: x.file, ...(x.json as object) })));
      const exits = outs.map((x) => verdictExit(x.result));
      if (!o.json) process.stdout.write(`${exits.filter((e) => e === 0).length} passed, ${exits.filter((e) => e === 1).length} failed, ${exits.filter((e) => e === 3).length} incomplete (${outs.length} scenario(s))\n`);
      // a violation anywhere is a finding; otherwise a search cut short leaves the set unproved
      process.exitCode = exits.includes(1) ? 1 : exits.includes(3) ? 3 : 0;
    });

  program
    .command('merge')
    .description('combine the JSON documents of `check --shard I/N` runs into the verdict one machine gives')
    .argument('<files...>', 'one shard document per shard')
    .option('--json', 'print the result as one JSON document')
    .action((files: string[], o: { json?: boolean }) => {
      let out;
      try {
        const docs = files.map((f) => {
          let text: string;
          try {
            text = readFileSync(f, 'utf8');
          } catch (e) {
            throw new UsageError(`${f}: ${(e as Error).message}`);
          }
          try {
            const d = JSON.parse(text) as ShardDoc;
            // the jobs' results print in snake_case (printJson): back to the explorer's names
            if (Array.isArray(d?.jobs)) d.jobs = d.jobs.map((j) => ({ job: j.job, result: camelKeys(j.result) }));
            return d;
          } catch (e) {
            throw new UsageError(`${f}: not JSON (${(e as Error).message})`);
          }
        });
        const { first, result } = mergeShards(docs);
        const scn = loadScenarioFile(first.file);
        if (searchId(scn, first.kernel, first.mutant, first.split_depth, !!first.states, !!first.atomic) !== first.search) throw new UsageError(`${first.file} changed since the shards ran; run them again`);
        const extra = [`merged ${docs.length} shard document(s) of ${first.shard.count}, ${first.jobs_total} job(s) split at depth ${first.split_depth}`];
        const r = fewestPreemptions(scn, result, first.kernel, first.mutant ?? undefined, extra);
        out = { result: r, ...present(scn, first.file, first.kernel, first.mutant ?? undefined, r, extra) };
      } catch (e) {
        invalid(e);
      }
      if (o.json) printJson(out.json);
      else process.stdout.write(out.text + '\n');
      process.exitCode = verdictExit(out.result);
    });

  program
    .command('replay')
    .description('re-run exactly one interleaving and print its trace')
    .argument('<file>', 'scenario YAML')
    .requiredOption('--schedule <s>', 'the schedule string a counterexample printed (THREAD:COUNT,...)')
    .addOption(kernelOpt())
    .option('--mutant <name>', 'the design variant the schedule was found on')
    .option('--json', 'print steps and violations as JSON')
    .addOption(devicesOpt())
    .addOption(perfettoOpt())
    .addOption(htmlOpt())
    .action((file: string, o: { schedule: string; kernel?: string; mutant?: string; json?: boolean; perfetto?: string; html?: string }) => {
      let scn, res;
      try {
        scn = loadScenarioFile(file);
        const mutant = mutantOpt(o.mutant);
        res = replay(scn, decodeSchedule(o.schedule), { kernel: kernelOf(scn, o.kernel, mutant), mutant });
      } catch (e) {
        invalid(e);
      }
      const { ex, diverged } = res;
      if (o.perfetto) writePerfetto(o.perfetto, scn, ex.run.k.variant.name, ex.run.k.mutant ?? undefined, decodeSchedule(o.schedule));
      if (o.html) writeHtml(o.html, scn, { kind: 'replay', kernel: ex.run.k.variant.name, mutant: ex.run.k.mutant ?? undefined, schedule: decodeSchedule(o.schedule), granularity: 'step', verdict: ex.failure ? `VIOLATION ${ex.failure.invariant}: ${ex.failure.message}` : 'no violation' });
      if (o.json) printJson({ scenario: scn.name, schedule: encodeSchedule(ex.schedule()), diverged, steps: ex.run.steps, violations: ex.run.k.violations, failure: ex.failure, trace: traceJson(ex) });
      else {
        process.stdout.write([`replay of ${scn.name} (${ex.schedule().length} steps)${diverged ? `: DIVERGED at ${diverged}` : ''}`, ...formatExecTrace(ex), ...ex.run.k.violations.map((v) => `VIOLATION ${v.invariant}: ${v.message}`), ex.failure ? `FAIL: ${ex.failure.invariant}: ${ex.failure.message}` : 'no violation'].join('\n') + '\n');
      }
      process.exitCode = diverged ? 2 : ex.failure ? 1 : 0;
    });

  program
    .command('mutants')
    .description('list the named design variants and what each breaks; --verify checks each against its scenario')
    .option('--verify', 'explore each mutant\'s scenario: the real design must pass and the mutant must fail')
    .option('--json', 'machine-readable')
    .action(async (o: { verify?: boolean; json?: boolean }) => {
      const rows: Array<(typeof MUTANTS)[number] & { real_passes?: boolean; caught?: string | null; executions?: number }> = [];
      for (const m of MUTANTS) {
        if (!o.verify) {
          rows.push({ ...m });
          continue;
        }
        const kernel = m.kernel;
        const real = await check(join(ROOT, m.scenario), { kernel, seed: '1', depth: '3', compare: false, json: true });
        const mut = await check(join(ROOT, m.scenario), { kernel, mutant: m.id, seed: '1', depth: '3', compare: false, json: true });
        rows.push({ ...m, real_passes: !real.result.counterexample && real.result.complete, caught: mut.result.counterexample?.invariant ?? null, executions: mut.result.executions });
      }
      if (o.json) return void printJson(rows);
      for (const r of rows) {
        process.stdout.write(`${r.id.padEnd(22)} ${r.description}\n${' '.repeat(23)}breaks: ${r.breaks}; scenario: ${r.scenario}\n${' '.repeat(23)}source: ${r.source}\n`);
        if ('caught' in r) process.stdout.write(`${' '.repeat(23)}verify: real design ${r.real_passes ? 'passes' : 'FAILS'}; mutant ${r.caught ? `caught (${r.caught}) after ${r.executions} execution(s)` : 'NOT caught'}\n`);
      }
      if (o.verify && rows.some((r) => !('caught' in r) || !r.caught || !r.real_passes)) process.exitCode = 1;
    });

  program
    .command('devices')
    .description('list the device profiles (use with "profile:" in a scenario): the built-in ones, and with --devices those of a directory of device files')
    .option('--json', 'machine-readable')
    .addOption(devicesOpt())
    .action((o: { json?: boolean }) => {
      const twin = (p: Profile) => twinOf({ name: p.id, ...p.desc });
      if (o.json) return void printJson(allProfiles().map((p) => ({ ...p, qemuTwin: typeof twin(p) === 'string' ? null : (twin(p) as Twin).title })));
      for (const p of allProfiles()) {
        process.stdout.write(`${p.id.padEnd(9)} ${p.title}\n`);
        for (const b of p.desc.bars) process.stdout.write(`         BAR${b.index}: ${fmtSize(b.size)}, ${b.bits}-bit${b.prefetchable ? ' prefetchable' : ''}\n`);
        if (p.desc.msix) process.stdout.write(`         MSI-X: ${p.desc.msix.entries} entries in BAR${p.desc.msix.bar} at 0x${p.desc.msix.offset.toString(16)}\n`);
        const t = twin(p);
        process.stdout.write(`         QEMU twin: ${typeof t === 'string' ? `none (${t})` : `${t.title} (vfio-sim conform can run it)`}\n         source: ${p.source}\n`);
      }
    });

  program
    .command('schema')
    .description('print a JSON Schema: of the scenario format (default), of a device file, or of a --json document (run-output, check-output, replay-output); schema/<name>.schema.json ship')
    .argument('[name]', `one of ${SCHEMAS.join(', ')}`, 'scenario')
    .action((name: string) => {
      if (!SCHEMAS.includes(name)) invalid(new UsageError(`schema: unknown name ${name}${didYouMean(name, SCHEMAS)} (known: ${SCHEMAS.join(', ')})`));
      const doc = name === 'scenario' ? scenarioJsonSchema() : name === 'device' ? deviceJsonSchema() : outputJsonSchema(name.replace(/-output$/, '') as OutputName);
      process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    });

  program
    .command('serve')
    .description('serve the report page of a scenario on 127.0.0.1 (default: the quickstart): it reloads when the file changes, picks kernel and mutant, and runs check with its progress')
    .argument('[file]', 'scenario YAML')
    .option('--port <n>', 'the port (0: any free one)', '8080')
    .option('--host <addr>', 'the address to listen on; anything but 127.0.0.1 exposes the page to the network', '127.0.0.1')
    .addOption(devicesOpt())
    .action((file: string | undefined, o: { port: string; host: string }) => {
      const f = file ?? DEFAULT_SCENARIO;
      try {
        loadScenarioFile(f);
      } catch (e) {
        invalid(e);
      }
      const port = whole('--port', o.port, 0);
      if (port > 65535) invalid(new UsageError(`--port: ${port} is not a port`));
      serve(f, { port, host: o.host, onListen: (url) => process.stderr.write(`serving ${f} at ${url} (Ctrl-C to stop)\n`), onError: (e) => invalid(new UsageError(`cannot listen on ${o.host}:${port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)) });
    });

  program
    .command('kernels')
    .description('list the modelled kernels')
    .option('--json', 'machine-readable: every kernel with its switches')
    .action((o: { json?: boolean }) => {
      if (o.json) return void printJson(Object.values(KERNELS).map((k) => ({ ...k, default: k.name === DEFAULT_KERNEL })));
      const w = Math.max(...Object.keys(KERNELS).map((n) => n.length));
      const rows = Object.values(KERNELS).map((k) => ({ k, on: `on ${k.base}${k.posted ? `, posted ${k.posted}` : ''}` }));
      const w2 = Math.max(...rows.map((r) => r.on.length));
      for (const { k, on } of rows) process.stdout.write(`${k.name.padEnd(w)}${k.name === DEFAULT_KERNEL ? ' (default)' : '          '} ${on.padEnd(w2)}  ${k.description}\n`);
    });

  program
    .command('config')
    .description('print the resolved Kconfig for the given symbols, e.g. vfio-sim config PCI_P2PDMA=n')
    .argument('[symbols...]', 'SYMBOL=y|n (or thp=always|madvise|never)')
    .option('--json', 'machine-readable: { SYMBOL: value }')
    .action((syms: string[], o: { json?: boolean }) => {
      const input: Record<string, string> = {};
      for (const s of syms) {
        const [k, v] = s.split('=');
        input[k] = v;
      }
      try {
        const c = resolveKconfig(input);
        if (o.json) return void printJson(Object.fromEntries(USER_SYMBOLS.map((s) => [s, c[s]])));
        for (const s of USER_SYMBOLS) process.stdout.write(`${s.padEnd(26)} ${String(c[s] === true ? 'y' : c[s] === false ? 'n' : c[s])}${s in input ? '  (set)' : ''}\n`);
      } catch (e) {
        invalid(e);
      }
    });

  registerDiff(program);
  registerConform(program);
  addExamples(program);
  program.parse(argv);
}

function fmtSize(n: number): string {
  for (const [u, s] of [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']] as const) if (n >= u && n % u === 0) return `${n / u} ${s}`;
  return `${n} B`;
}
