// The race shapes bundled under scenarios/shapes/ are what bench/shapes.ts generates (section 7 of
// the benchmark), so `vfio-sim check` on them measures the same races as the benchmark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dmabufShapeScenario, shapeScenario } from '../bench/shapes.ts';

export const BUNDLED_SHAPES: Array<[string, string]> = [
  ['scenarios/shapes/fault-vs-revoke-2x1x2.yaml', shapeScenario(2, 1, 2)],
  ['scenarios/shapes/fault-vs-revoke-2x2x4.yaml', shapeScenario(2, 2, 4)],
  ['scenarios/shapes/fault-vs-revoke-3x3x4.yaml', shapeScenario(3, 3, 4)],
  ['scenarios/shapes/dmabuf-mmap-vs-revoke-2x2.yaml', dmabufShapeScenario(2, 2)],
];

test('the bundled race shapes are the benchmark\'s', () => {
  for (const [file, yaml] of BUNDLED_SHAPES) assert.equal(readFileSync(file, 'utf8'), yaml, `${file} differs from bench/shapes.ts; regenerate it`);
});
