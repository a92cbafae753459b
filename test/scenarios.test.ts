// Every bundled scenario passes on every kernel it declares (`kernels:`, default all of KERNELS):
// each expect: holds and the only invariant findings are the ones the scenario declares for that
// kernel (`expect_violations`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { KERNELS } from '../src/kernel/variants.ts';
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
