// Every bundled scenario, checked exhaustively as `vfio-sim check` does (DPOR, atomic blocks, state
// caching, invariants after every kernel step): none breaks an invariant in any interleaving, on
// the kernel `check` picks for it. The race shapes of the benchmark (scenarios/shapes) are measured
// by `npm run bench`, not here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundledScenarios } from './bundled.ts';
import { kernelFor, loadScenarioFile } from '../src/scenario/loader.ts';
import { exploreDpor } from '../src/explore/explorer.ts';

test('every bundled scenario but the bench shapes: every interleaving explored, no violation', { timeout: 600_000 }, () => {
  const files = bundledScenarios().filter((f) => !f.includes('/shapes/'));
  assert.ok(files.length > 90);
  const bad: string[] = [];
  for (const f of files) {
    const scn = loadScenarioFile(f);
    const r = exploreDpor(scn, { kernel: kernelFor(scn), states: true, atomic: true, maxExecutions: 50_000 });
    if (r.counterexample) bad.push(`${f}: ${r.counterexample.invariant}: ${r.counterexample.message}`);
    else if (!r.complete) bad.push(`${f}: not finished in ${r.executions} executions`);
  }
  assert.deepEqual(bad, []);
});
