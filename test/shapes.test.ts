// The race shapes bundled under scenarios/shapes/ are what bench/shapes.ts generates (section 7 of
// the benchmark), so `vfio-sim check` on them measures the same races as the benchmark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dmabufShapeScenario, PML, shapeScenario, SPIN_MODELS, spinRun } from '../bench/shapes.ts';
import { parseScenario } from '../src/scenario/loader.ts';
import { exploreDpor } from '../src/explore/explorer.ts';

export const BUNDLED_SHAPES: Array<[string, string]> = [
  ['scenarios/shapes/fault-vs-revoke-2x1x2.yaml', shapeScenario(2, 1, 2)],
  ['scenarios/shapes/fault-vs-revoke-2x2x4.yaml', shapeScenario(2, 2, 4)],
  ['scenarios/shapes/fault-vs-revoke-3x3x4.yaml', shapeScenario(3, 3, 4)],
  ['scenarios/shapes/dmabuf-mmap-vs-revoke-2x2.yaml', dmabufShapeScenario(2, 2)],
];

test('the bundled race shapes are the benchmark\'s', () => {
  for (const [file, yaml] of BUNDLED_SHAPES) assert.equal(readFileSync(file, 'utf8'), yaml, `${file} differs from bench/shapes.ts; regenerate it`);
});

// Spin's Promela models of the shapes (the bench's yardstick) must judge the race as the explorer
// does: safe as posted, broken without the zap. Skipped where `spin` or `gcc` is missing (.ci/run
// installs spin).
const haveSpin = spawnSync('spin', ['-V']).status === 0 && spawnSync('gcc', ['--version']).status === 0;

test('the Spin models of the race agree with the explorer: safe as posted, no-stale-pte broken without the zap', { skip: !haveSpin && 'spin or gcc is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-spin-test-'));
  try {
    copyFileSync(PML, join(dir, 'fault-vs-revoke.pml'));
    const states: Record<string, number> = {};
    for (const [f, p, r] of [[1, 1, 2], [2, 1, 2]] as const) {
      const scn = parseScenario(shapeScenario(f, p, r));
      const ok = exploreDpor(scn, { kernel: 'series-v4', atomic: true, states: true });
      assert.ok(ok.complete && !ok.counterexample, `explorer on ${f}x${p}x${r}`);
      for (const m of SPIN_MODELS) {
        const safe = spinRun(dir, f, p, r, m.defs, 60_000);
        assert.ok(typeof safe !== 'string' && safe.complete && safe.errors === 0 && safe.states > 0, `${m.name} Spin on ${f}x${p}x${r}: ${JSON.stringify(safe)}`);
        states[`${m.name} ${f}x${p}x${r}`] = safe.states;
      }
    }
    const broken = exploreDpor(parseScenario(shapeScenario(1, 1, 2)), { kernel: 'series-v4', mutant: 'no-zap', atomic: true, states: true });
    assert.equal(broken.counterexample?.invariant, 'no-stale-pte', 'explorer with no-zap on 1x1x2');
    for (const m of SPIN_MODELS) {
      const nozap = spinRun(dir, 1, 1, 2, [...m.defs, '-DNOZAP'], 60_000);
      assert.ok(typeof nozap !== 'string' && nozap.errors > 0 && nozap.assertion === '!(pte[k])', `${m.name} Spin -DNOZAP on 1x1x2 breaks no-stale-pte: ${JSON.stringify(nozap)}`);
    }
    // the faithful model makes the handler calls the coarse one folds into one: more states
    assert.ok(states['faithful 2x1x2'] > states['coarse 2x1x2'], JSON.stringify(states));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
