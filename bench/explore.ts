// The explorer benchmark: exhaustive DPOR (exploreDpor) on every bundled race scenario, against
// naive enumeration (exploreDfs without a preemption bound) capped by executions and time, and the
// executions DPOR needs to catch each mutant. Prints figures only; never asserts a timing or a count.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelFor, loadScenarioFile, type Scenario } from '../src/scenario/loader.ts';
import { exploreDfs, exploreDpor, type ExploreResult } from '../src/explore/explorer.ts';
import type { Execution } from '../src/explore/execution.ts';
import { MUTANTS } from '../src/explore/mutants.ts';
import { fixed, heading, int, ms, rate, table } from './format.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RACES = join(ROOT, 'scenarios', 'races');

export interface ExploreBenchOptions {
  /** naive enumeration stops after this many executions ... */
  naiveCap: number;
  /** ... or once it has run this long (checked after every execution) */
  naiveMs: number;
  out: (s?: string) => void;
}

/**
 * Race scenarios small enough for naive enumeration to finish: these run naive to the end (with a
 * safety cap), so their reduction factor is measured, not bounded.
 */
const SMALL = new Set(['store-vs-pwrite', 'store-vs-pwrite-vs-close']);
const SMALL_CAP = 100_000;

/** The kernel a scenario is explored on: the default kernel if the scenario holds there. */

/** Steps each thread took in one execution, in thread order. */
function perThread(ex: Execution): Array<[string, number]> {
  const n = new Map<string, number>(ex.tasks.map((t) => [t.name, 0]));
  for (const name of ex.schedule()) n.set(name, (n.get(name) ?? 0) + 1);
  return [...n];
}

/** (Σn)! / Πn!: the interleavings of fixed per-thread step sequences of these lengths. */
export function multinomial(counts: number[]): bigint {
  const fact = (k: number) => {
    let f = 1n;
    for (let i = 2n; i <= BigInt(k); i++) f *= i;
    return f;
  };
  return counts.reduce((acc, c) => acc / fact(c), fact(counts.reduce((a, b) => a + b, 0)));
}

/** A BigInt in scientific notation (3 significant digits) once it has more than 7 digits. */
export function sci(b: bigint): string {
  const s = b.toString();
  if (s.length <= 7) return int(Number(b));
  let mant = Math.round(Number(s.slice(0, 4)) / 10) / 100;
  let exp = s.length - 1;
  if (mant >= 10) {
    mant /= 10;
    exp++;
  }
  return `${mant.toFixed(2)}e${exp}`;
}

interface DporRow {
  scenario: string;
  kernel: string;
  mutant: string | null;
  r: ExploreResult;
  ms: number;
  /** each thread's steps in DPOR's first execution */
  first: Array<[string, number]>;
  /** each thread's largest step count over DPOR's executions (sleep-set-cut ones excluded) */
  max: Array<[string, number]>;
}

function dpor(scenario: string, scn: Scenario, kernel: string, mutant: string | null = null): DporRow {
  let first: Array<[string, number]> | null = null;
  const max = new Map<string, number>();
  const t0 = performance.now();
  const r = exploreDpor(scn, {
    kernel, mutant,
    onExecution: (ex) => {
      const c = perThread(ex);
      first ??= c;
      for (const [n, k] of c) max.set(n, Math.max(max.get(n) ?? 0, k));
    },
  });
  return { scenario, kernel, mutant, r, ms: performance.now() - t0, first: first ?? [], max: [...max] };
}

interface NaiveRun {
  executions: number;
  steps: number;
  ms: number;
  /** exhaustive; or why it stopped */
  end: 'complete' | 'cap' | 'time' | 'counterexample';
}

class OutOfTime extends Error {}

/** exploreDfs with no preemption bound, stopped by maxExecutions or (thrown out of onExecution) by time. */
function naive(scn: Scenario, kernel: string, cap: number, budgetMs: number): NaiveRun {
  let executions = 0, steps = 0;
  const t0 = performance.now();
  let r: ExploreResult;
  try {
    r = exploreDfs(scn, {
      kernel, maxExecutions: cap,
      onExecution: (ex) => {
        executions++;
        steps += ex.choices.length;
        if (performance.now() - t0 > budgetMs) throw new OutOfTime();
      },
    });
  } catch (e) {
    if (!(e instanceof OutOfTime)) throw e;
    return { executions, steps, ms: performance.now() - t0, end: 'time' };
  }
  const t = performance.now() - t0;
  return { executions: r.executions, steps: r.steps, ms: t, end: r.counterexample ? 'counterexample' : r.complete ? 'complete' : 'cap' };
}

const threadsCell = (x: DporRow) => x.first.map(([n, c], i) => `${n}:${c}/${x.max[i]?.[1] ?? '?'}`).join(' ');
const verdict = (r: ExploreResult) => (r.counterexample ? `FAILS ${r.counterexample.invariant}` : r.complete ? 'complete, passes' : 'cut short');

export function runExploreBench(o: ExploreBenchOptions): void {
  const out = o.out;
  const files = readdirSync(RACES).filter((f) => f.endsWith('.yaml')).sort();
  const scenarios = files.map((f) => ({ name: f.replace(/\.yaml$/, ''), scn: loadScenarioFile(join(RACES, f)) }));

  // warm the JIT on the explorer, the scenario runner and a fault/revoke race before timing
  const small = loadScenarioFile(join(RACES, 'store-vs-pwrite.yaml'));
  exploreDpor(small, {});
  exploreDfs(small, {});
  exploreDpor(loadScenarioFile(join(RACES, 'fault-vs-perm-revoke.yaml')), {});

  // ---- 5 ----
  out(heading(`5. Explorer: exhaustive DPOR (exploreDpor, sleep sets) on the race scenarios, no mutant`));
  const rows: DporRow[] = [];
  for (const s of scenarios) {
    const k = kernelFor(s.scn);
    const row = dpor(s.name, s.scn, k);
    rows.push(row);
    // a scenario the default kernel fails (a finding of the model, not a mutant) stops at its
    // counterexample; explore it also on the next kernel it lists, for a complete figure
    if (row.r.counterexample) {
      const other = s.scn.kernels.find((x) => x !== k);
      if (other) rows.push(dpor(s.name, s.scn, other));
    }
  }
  out(table(
    ['<scenario', '<kernel', '<verdict', 'executions', 'sleep-set cut', 'steps', 'time', 'executions/s', 'steps/s', '<steps per thread: 1st execution/max'],
    rows.map((x) => [
      x.scenario, x.kernel, verdict(x.r), int(x.r.executions), int(x.r.sleepBlocked), int(x.r.steps), ms(x.ms),
      int(rate(x.r.executions, x.ms)), int(rate(x.r.steps, x.ms)), threadsCell(x),
    ]),
  ));
  const tot = rows.reduce((a, x) => ({ e: a.e + x.r.executions, s: a.s + x.r.steps, ms: a.ms + x.ms }), { e: 0, s: 0, ms: 0 });
  out(`  all rows: ${int(tot.e)} executions, ${int(tot.s)} steps in ${fixed(tot.ms / 1000, 2)} s: ${int(rate(tot.e, tot.ms))} executions/s, ${int(rate(tot.s, tot.ms))} steps/s.`);
  out('  Single-threaded, one sample each. An execution re-runs the scenario from scratch (a new kernel, the setup');
  out('  run sequentially, then the threads under the explorer\'s schedule); "steps" counts the thread steps only,');
  out('  replayed prefixes included; the time includes the setups. executions includes the sleep-set-cut ones:');
  out('  runs DPOR abandoned when every enabled thread was asleep (provably redundant). verdict: complete = every');
  out('  Mazurkiewicz trace explored; FAILS = stopped at the first counterexample (the row after it explores the next');
  out('  kernel the scenario lists). kernel: the default kernel unless the scenario\'s kernels: list leaves it out.');
  out('  steps per thread: in DPOR\'s first execution / the most over its executions (sleep-set-cut ones excluded).');

  // ---- 5a ----
  checkDefaults(rows, o.out);

  // ---- 5b ----
  out(heading(`5b. Naive enumeration (exploreDfs, no bound) vs DPOR: cap ${int(o.naiveCap)} executions or ${fixed(o.naiveMs / 1000, 1)} s per bundled scenario`));
  const nrows: string[][] = [];
  for (const x of rows) {
    const s = scenarios.find((y) => y.name === x.scenario)!;
    // the small scenarios run to the end (with a safety cap): their reduction factor is measured
    const n = SMALL.has(s.name) ? naive(s.scn, x.kernel, SMALL_CAP, Infinity) : naive(s.scn, x.kernel, o.naiveCap, o.naiveMs);
    const factor = n.executions / Math.max(1, x.r.executions);
    let naiveCell: string, factorCell: string;
    if (n.end === 'complete') {
      naiveCell = `${int(n.executions)} (all)`;
      factorCell = x.r.complete ? `= ${fixed(factor, 1)}` : 'n/a';
    } else if (n.end === 'counterexample') {
      naiveCell = `${int(n.executions)} (to 1st failure)`;
      factorCell = 'n/a (finding)';
    } else {
      naiveCell = `> ${int(n.executions)} (${n.end === 'cap' ? 'cap' : 'time'})`;
      factorCell = x.r.complete ? `> ${fixed(factor, 1)}` : 'n/a';
    }
    const one = multinomial(x.first.map(([, c]) => c));
    const bound = multinomial(x.max.map(([, c]) => c));
    // a measured naive count above the one-execution figure shows that it is no bound
    const over = n.executions > Number(one) ? ' (< naive!)' : '';
    nrows.push([
      x.scenario, x.kernel, int(x.r.executions), naiveCell, int(n.steps), ms(n.ms), int(rate(n.executions, n.ms)), int(rate(n.steps, n.ms)), factorCell,
      sci(one) + over, sci(bound) + (x.r.complete ? '' : ' (partial)'),
    ]);
  }
  out(table(['<scenario', '<kernel', 'DPOR executions', '<naive executions', 'naive steps', 'naive time', 'naive exec/s', 'naive steps/s', 'naive ÷ DPOR', '<multinomial, 1st execution', '<multinomial, max (upper bound)'], nrows));
  out(`  naive: every interleaving, depth first, the running thread first; no reduction. "(all)" = exhausted (${[...SMALL].join(' and ')}`);
  out(`  have no time budget, only a cap of ${int(SMALL_CAP)}), so naive ÷ DPOR is the measured reduction factor (DPOR`);
  out('  executions include the sleep-set-cut ones). "> N (cap)" / "> N (time)": stopped after N executions by the');
  out('  execution cap / the time budget, so N and N ÷ DPOR are lower bounds. "(to 1st failure)": naive stops at the');
  out('  first counterexample too, so there is no factor.');
  out('  multinomial: (Σn)!/Πn!, exact as a BigInt, printed in scientific notation above 7 digits. The number of');
  out('  interleavings of per-thread step sequences of lengths n, ignoring blocking (a sleeping thread cannot be');
  out('  scheduled, which only removes interleavings).');
  out('  - 1st execution: n = the step counts of DPOR\'s first execution. NOT an upper bound on naive when a thread\'s');
  out('    step count depends on the interleaving (a fault that waits, retries or refaults): "(< naive!)" marks rows');
  out('    where naive already ran more executions than this figure.');
  out('  - max: n = each thread\'s largest step count over DPOR\'s complete executions. An upper bound on naive when DPOR');
  out('    is complete: equivalent executions have the same steps per thread, so these maxima are those of every naive');
  out('    execution; and a naive execution padded with each thread\'s missing steps at its end is an interleaving of');
  out('    sequences of lengths n, distinct for distinct executions (no finished execution is a prefix of another).');
  out('    "(partial)": DPOR stopped at a counterexample, so the maxima cover only the executions it ran.');

  // ---- 6 ----
  out(heading('6. Mutants: executions DPOR needs to catch each one (exploreDpor, first counterexample)'));
  const mrows: string[][] = [];
  for (const m of MUTANTS) {
    const scn = loadScenarioFile(join(ROOT, m.scenario));
    const kernel = m.kernel;
    const x = dpor(m.scenario.replace(/^scenarios\/races\/|\.yaml$/g, ''), scn, kernel, m.id);
    const real = rows.find((r) => r.scenario === x.scenario && r.kernel === kernel && r.r.complete);
    mrows.push([
      m.id, kernel, x.scenario, x.r.counterexample ? x.r.counterexample.invariant : `NOT caught (${verdict(x.r)})`,
      int(x.r.executions), int(x.r.steps), ms(x.ms), x.r.counterexample ? String(x.r.counterexample.preemptions) : '',
      real ? `${int(real.r.executions)} (complete)` : `not in table 5 (kernel ${kernel})`,
    ]);
  }
  out(table(['<mutant', '<kernel', '<scenario', '<caught by', 'executions to catch', 'steps', 'time', 'preemptions', 'real design: DPOR executions'], mrows));
  out('  executions to catch: DPOR executions up to and including the first failing one; steps and time likewise.');
  out('  preemptions: context switches away from a runnable thread in the counterexample\'s schedule. real design:');
  out('  the exhaustive run of the same scenario and kernel without the mutant, from table 5.');
}

/**
 * What `check` runs by default (atomic blocks and state caching) on the bundled races, beside plain
 * DPOR from table 5, and on every other bundled scenario with two or more threads (the
 * multi-process ones), within a time budget each.
 */
function checkDefaults(rows: DporRow[], out: (s?: string) => void, budgetMs = 60_000): void {
  out(heading('5a. What `check` runs: DPOR with atomic blocks and state caching (budget 60 s each), beside plain DPOR'));
  const t: string[][] = [];
  const run = (name: string, scn: Scenario, kernel: string, plain: ExploreResult | null) => {
    const t0 = performance.now();
    const r = exploreDpor(scn, { kernel, atomic: true, states: true, maxMs: budgetMs });
    const secs = (performance.now() - t0) / 1000;
    const cut = r.complete || r.counterexample ? '' : ' (not done)';
    t.push([name, kernel, verdict(r), int(r.executions) + cut, int(r.states ?? 0), int(r.restarts ?? 0), fixed(secs, 2), plain ? `${int(plain.executions)}${plain.complete || plain.counterexample ? '' : ' (cut)'}` : '-']);
  };
  for (const x of rows) run(x.scenario, loadScenarioFile(join(RACES, `${x.scenario}.yaml`)), x.kernel, x.r);
  for (const f of readdirSync(join(ROOT, 'scenarios')).filter((n) => n.endsWith('.yaml')).sort()) {
    const scn = loadScenarioFile(join(ROOT, 'scenarios', f));
    if (scn.threads.length < 2) continue;
    run(f.replace(/\.yaml$/, ''), scn, kernelFor(scn), null);
  }
  out(table(['<scenario', '<kernel', '<verdict', 'executions', 'states', 'restarts', 's', 'plain DPOR executions'], t));
  out('  states: distinct states stored (at block boundaries); restarts: searches started again when a step taken as');
  out('  commuting was contradicted by what another thread was later seen to touch. The scenarios below the races are');
  out('  the bundled ones with two or more threads (multi-process hand-overs with post/wait); plain DPOR is not run on them.');
}
