// Every mutant is caught by its scenario, and the real design passes that scenario exhaustively.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { exploreDpor } from '../src/explore/explorer.ts';
import { MUTANTS } from '../src/explore/mutants.ts';

for (const m of MUTANTS) {
  test(`mutant ${m.id} is caught by ${m.scenario}; the real design passes it`, () => {
    const scn = loadScenarioFile(m.scenario);
    const real = exploreDpor(scn, { kernel: m.kernel });
    assert.equal(real.counterexample, null, `real design fails: ${real.counterexample?.invariant}: ${real.counterexample?.message}`);
    assert.ok(real.complete, 'the real design was explored exhaustively');
    const mut = exploreDpor(scn, { kernel: m.kernel, mutant: m.id });
    assert.ok(mut.counterexample, `mutant ${m.id} was not caught in ${mut.executions} executions`);
    // the catch is the invariant (or expectation) the registry says it breaks
    assert.ok(m.breaks.includes(mut.counterexample.invariant), `${m.id} broke ${mut.counterexample.invariant}, registry says ${m.breaks}`);
  });
}
