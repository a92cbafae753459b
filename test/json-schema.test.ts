// The reference the repository ships for the scenario format: the JSON Schema
// (schema/scenario.schema.json), generated from the loader's zod schemas and up to date, named and
// passed by every bundled scenario, refusing a sample of what the loader refuses; and the docs
// generated or checked against the code (docs/scenario-format.md, docs/invariants.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { scenarioJsonSchema } from '../src/scenario/json-schema.ts';
import { parseScenario } from '../src/scenario/loader.ts';
import { bundledScenarios } from './bundled.ts';

const FILE = 'schema/scenario.schema.json';
const schema = JSON.parse(readFileSync(FILE, 'utf8'));
const validate = new Ajv2020({ allErrors: false, strict: false }).compile(schema);

test('schema/scenario.schema.json is what the zod schemas generate (npm run schema)', () => {
  assert.deepEqual(schema, JSON.parse(JSON.stringify(scenarioJsonSchema())));
});

test('docs/scenario-format.md is what the schemas generate (npm run docs:format)', async () => {
  const { scenarioFormatDoc } = await import('../src/scenario/format-doc.ts');
  assert.equal(readFileSync('docs/scenario-format.md', 'utf8'), scenarioFormatDoc(readFileSync('src/scenario/schema.ts', 'utf8')));
});

test('every bundled scenario names the schema on its first line and passes it', () => {
  const files = bundledScenarios();
  assert.ok(files.length > 90);
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    const m = /^# yaml-language-server: \$schema=(\S+)\n/.exec(src);
    assert.ok(m, `${f}: no yaml-language-server line`);
    assert.equal(resolve(dirname(f), m[1]), resolve(FILE), `${f}: the $schema path does not lead to ${FILE}`);
    assert.ok(validate(parse(src)), `${f}: ${JSON.stringify(validate.errors?.slice(0, 2))}`);
  }
});

test('the schema refuses what the loader refuses: unknown operations, fields, flags, kernels, profiles, two-key steps', () => {
  const head = 'name: t\ndevices:\n  - { name: gpu0, profile: h100 }\n';
  const ok = head + 'threads:\n  main:\n    - open: { path: /dev/vfio/devices/gpu0, as: dev, expect: { ok: true } }\n';
  assert.ok(validate(parse(ok)), JSON.stringify(validate.errors));
  assert.doesNotThrow(() => parseScenario(ok, 't.yaml'));
  const bad = [
    head + 'threads:\n  main:\n    - opne: { path: /dev/vfio/devices/gpu0 }\n',
    head + 'threads:\n  main:\n    - open: { path: /dev/vfio/devices/gpu0, mode: 3 }\n',
    head + 'threads:\n  main:\n    - open: { path: /dev/vfio/devices/gpu0, flags: [rdwrx] }\n',
    head + 'threads:\n  main:\n    - open: { path: /dev/vfio/devices/gpu0, expect: { errno: EWHATEVER } }\n',
    head + 'threads:\n  main:\n    - { open: { path: /dev/vfio/devices/gpu0 }, close: { fd: 3 } }\n',
    head + 'kernels: [series-v9]\nthreads:\n  main:\n    - close: { fd: 3 }\n',
    'name: t\ndevices:\n  - { name: gpu0, profile: h200 }\nthreads:\n  main:\n    - close: { fd: 3 }\n',
    head + 'expect_violations: { series-v4: [no-stale-ptes] }\nthreads:\n  main:\n    - close: { fd: 3 }\n',
  ];
  for (const src of bad) {
    assert.equal(validate(parse(src)), false, `the schema accepts:\n${src}`);
    assert.throws(() => parseScenario(src, 't.yaml'), Error, `the loader accepts:\n${src}`);
  }
});

test('docs/invariants.md has a section for every invariant the checker knows, and no other', async () => {
  const { INVARIANTS } = await import('../src/kernel/invariants.ts');
  const doc = readFileSync('docs/invariants.md', 'utf8');
  const sections = [...doc.matchAll(/^## (\S+)$/gm)].map((m) => m[1]);
  assert.deepEqual([...sections].sort(), [...INVARIANTS].sort());
});
