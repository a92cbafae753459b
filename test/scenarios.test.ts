// Every bundled scenario passes on every kernel it declares (`kernels:`, default all of KERNELS):
// each expect: holds and the only invariant findings are the ones the scenario declares for that
// kernel (`expect_violations`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { KERNELS } from '../src/kernel/variants.ts';

export function bundledScenarios(dir = 'scenarios'): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...bundledScenarios(p));
    else if (e.endsWith('.yaml')) out.push(p);
  }
  return out;
}

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

test('a scenario restricted to some kernels names why, in a comment above kernels:', () => {
  for (const file of bundledScenarios()) {
    const scn = loadScenarioFile(file);
    if (scn.kernels.length === Object.keys(KERNELS).length) continue;
    const src = readFileSync(file, 'utf8');
    assert.match(src, /^# .+\nkernels: \[/m, `${file} restricts its kernels without a reason`);
  }
});
