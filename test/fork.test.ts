// ScenarioRun.fork, the explorer's shortcut past boot and setup: a copy of a booted run behaves
// exactly as a run built from scratch. On every bundled scenario, under random schedules, a fresh
// run and a copy take the same steps (events, notes), give the same results and violations and end
// in the same state (finalFingerprint); running copies leaves the run they were copied from as it
// was; and a run a thread has stepped cannot be copied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenarioFile, kernelFor, type Scenario } from '../src/scenario/loader.ts';
import { ScenarioRun } from '../src/scenario/runner.ts';
import { forkPlan } from '../src/scenario/fork.ts';
import { Execution } from '../src/explore/execution.ts';
import { finalFingerprint } from '../src/explore/fingerprint.ts';
import { kernelHash } from '../src/explore/state.ts';
import { rng } from '../src/explore/pct.ts';
import { bundledScenarios } from './bundled.ts';

const SEEDS = 3;
const MAX_STEPS = 3000;

/** Step a run under a seeded random schedule; the steps it took, in words. */
function drive(run: ScenarioRun, seed: number): string[] {
  const rand = rng(seed), out: string[] = [];
  for (let i = 0; i < MAX_STEPS; i++) {
    const en = run.enabled();
    if (!en.length) break;
    const t = en[Math.floor(rand() * en.length)];
    const rec = run.step(t);
    out.push(`${t.name} ${rec.ev.op} ${rec.ev.obj} ${rec.ev.acc} ${JSON.stringify(rec.ev.spans ?? [])} ${rec.notes.join('|')}`);
  }
  run.finish();
  return out;
}

/** What the explorer compares of an execution's end: its fingerprint (results, state, violations). */
function endOf(run: ScenarioRun): string {
  return finalFingerprint({ run } as Execution) + JSON.stringify(run.steps);
}

test('a copy of a booted run takes the same steps and ends in the same state as a fresh run, on every bundled scenario', () => {
  const unforkable: string[] = [];
  let compared = 0;
  for (const file of bundledScenarios()) {
    const scn: Scenario = loadScenarioFile(file);
    const opts = { kernel: kernelFor(scn), checkEachStep: true };
    const template = new ScenarioRun(scn, opts);
    const plan = forkPlan(template, new ScenarioRun(scn, opts));
    if (!template.fork(plan, true)) {
      unforkable.push(file);
      continue;
    }
    const before = kernelHash(template);
    for (let seed = 1; seed <= SEEDS; seed++) {
      const fresh = new ScenarioRun(scn, opts), copy = template.fork(plan)!;
      assert.deepEqual(drive(copy, seed), drive(fresh, seed), `${file} seed ${seed}: steps`);
      assert.equal(endOf(copy), endOf(fresh), `${file} seed ${seed}: end state`);
      compared++;
    }
    assert.equal(kernelHash(template), before, `${file}: running copies changed the template`);
  }
  // every bundled scenario boots into a state a copy can be made of (the check is per run, so a
  // scenario that could not would still be explored, booting each execution: slower, not wrong)
  assert.deepEqual(unforkable, []);
  assert.ok(compared > 100);
});

test('a run that a thread has stepped cannot be copied; an execution copies only a run setup has left', () => {
  const scn = loadScenarioFile('scenarios/shapes/fault-vs-revoke-2x1x2.yaml');
  const run = new ScenarioRun(scn, { checkEachStep: true });
  const plan = forkPlan(run, new ScenarioRun(scn, { checkEachStep: true }));
  assert.ok(run.fork(plan, true));
  run.step(run.enabled()[0]);
  assert.equal(run.fork(plan), null);
  // two executions are independent copies: stepping one leaves the other at the start
  const a = new Execution(scn, {}), b = new Execution(scn, {});
  const h = kernelHash(b.run);
  for (let i = 0; i < 20 && a.enabled().length; i++) a.step(a.enabled()[0]);
  assert.notEqual(kernelHash(a.run), h);
  assert.equal(kernelHash(b.run), h);
});

test('forkPlan finds a closure over the run that a copy would keep, and fork refuses it', () => {
  const scn = loadScenarioFile('scenarios/shapes/fault-vs-revoke-2x1x2.yaml');
  const run = new ScenarioRun(scn, { checkEachStep: true });
  // an ops table closing over this run's kernel, which rebindOps does not know
  const k = run.k;
  (k as unknown as { extraOps: object }).extraOps = { poke: () => k.violations.length };
  const other = new ScenarioRun(scn, { checkEachStep: true });
  const o = other.k;
  (o as unknown as { extraOps: object }).extraOps = { poke: () => o.violations.length };
  const plan = forkPlan(run, other);
  assert.ok([...plan.closures].some((f) => String(f).includes('violations.length')));
  assert.equal(run.fork(plan, true), null);
  assert.ok(run.fork(plan), 'without the check it would copy');
});
