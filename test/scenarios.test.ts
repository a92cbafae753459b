// Every bundled scenario passes on every kernel it declares (`kernels:`, default all of KERNELS):
// each expect: holds and the only invariant findings are the ones the scenario declares for that
// kernel (`expect_violations`); and those with several threads hold under exploration too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelFor, loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { KERNELS } from '../src/kernel/variants.ts';
import { explorePct } from '../src/explore/explorer.ts';
import { bundledScenarios } from './bundled.ts';

for (const file of bundledScenarios()) {
  const scn = loadScenarioFile(file);
  for (const kernel of Object.keys(KERNELS)) {
    if (!scn.kernels.includes(kernel)) continue;
    test(`scenario ${file} on ${kernel}`, () => {
      const { result } = runScenario(scn, { kernel });
      assert.deepEqual(result.problems, [], result.problems.join('\n'));
      assert.equal(result.exit, 0);
    });
  }
}

// A scenario with several threads must hold in every interleaving, not only in run's round-robin
// one (its threads hand over with post/wait where the order matters). The race scenarios are
// explored exhaustively by the explorer and mutant tests; the others here with PCT (200 random
// schedules of depth 3, seed 1), which is fast whatever their size.
for (const file of bundledScenarios().filter((f) => !f.includes('/races/'))) {
  const scn = loadScenarioFile(file);
  if (scn.threads.length < 2) continue;
  const kernel = kernelFor(scn);
  if ((scn.expectViolations[kernel] ?? scn.expectViolations['*'] ?? []).length) continue;
  test(`scenario ${file} holds in 200 PCT schedules on ${kernel}`, () => {
    const r = explorePct(scn, { runs: 200, seed: 1, kernel });
    assert.equal(r.counterexample, null, r.counterexample ? `${r.counterexample.invariant}: ${r.counterexample.message}` : '');
    assert.equal(r.executions, 200);
  });
}
