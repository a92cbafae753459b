// Every bundled scenario passes: each expect: holds and the only invariant findings are the ones the
// scenario declares for that kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';

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
  test(`scenario ${file}`, () => {
    const scn = loadScenarioFile(file);
    const { result } = runScenario(scn);
    assert.deepEqual(result.problems, [], result.problems.join('\n'));
    assert.equal(result.exit, 0);
  });
}
