// The JSON documents of run, check and replay against the schemas shipped in schema/: the files are
// what the zod schemas generate, real output validates, and what the contract rules out (camelCase
// keys, a u64 as a number, an unknown field) does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { outputJsonSchema, OUTPUT_SCHEMAS, type OutputName } from '../src/cli/output-schema.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/vfio-sim.js', import.meta.url));
const ajv = new Ajv2020({ allErrors: true, strict: false });
const compiled = new Map<OutputName, ReturnType<typeof ajv.compile>>();
const validator = (name: OutputName) => {
  let v = compiled.get(name);
  if (!v) compiled.set(name, (v = ajv.compile(JSON.parse(readFileSync(`${ROOT}schema/${name}-output.schema.json`, 'utf8')))));
  return v;
};
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(r.stdout) as Record<string, unknown>;
};
const errorsOf = (v: ReturnType<typeof validator>) => JSON.stringify(v.errors?.slice(0, 3));

test('schema/*-output.schema.json are what `vfio-sim schema NAME-output` prints (npm run schema)', () => {
  for (const name of Object.keys(OUTPUT_SCHEMAS) as OutputName[]) {
    assert.deepEqual(JSON.parse(readFileSync(`${ROOT}schema/${name}-output.schema.json`, 'utf8')), outputJsonSchema(name), `${name}: run npm run schema`);
    assert.deepEqual(JSON.parse(execFileSync(process.execPath, [BIN, 'schema', `${name}-output`], { encoding: 'utf8' })), outputJsonSchema(name));
  }
});

test('run --json of every bundled scenario validates against the run schema', () => {
  const docs = JSON.parse(spawnSync(process.execPath, [BIN, 'run', 'scenarios', '--json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 }).stdout) as unknown[];
  assert.ok(docs.length > 90);
  const v = validator('run');
  assert.ok(v(docs), errorsOf(v));
  // one run prints one document, not an array
  assert.ok(v(cli('run', '--json')), errorsOf(v));
});

test('check --json (a pass and a counterexample with its lock-level trace) and replay --json validate', () => {
  const check = validator('check'), replay = validator('replay');
  const pass = cli('check', 'scenarios/races/fault-vs-revoke.yaml', '--json');
  assert.ok(check(pass), errorsOf(check));
  assert.equal(pass.violation, null);
  const found = cli('check', 'scenarios/races/fault-vs-revoke.yaml', '--json', '--mutant', 'no-zap');
  assert.ok(check(found), errorsOf(check));
  const ce = found.violation as { invariant: string; schedule: string; trace: { steps: Array<{ op: string; notes: string[] }>; locks_at_end: unknown[] } };
  assert.equal(ce.invariant, 'no-stale-pte');
  // the trace is the kernel's steps: lock operations and what they changed
  assert.ok(ce.trace.steps.some((s) => s.op === 'down_write'));
  assert.ok(ce.trace.steps.some((s) => s.notes.some((n) => /install/.test(n))));
  const rep = cli('replay', 'scenarios/races/fault-vs-revoke.yaml', '--mutant', 'no-zap', '--schedule', ce.schedule, '--json');
  assert.ok(replay(rep), errorsOf(replay));
  assert.deepEqual((rep.trace as typeof ce.trace).steps, ce.trace.steps, 'replay prints the trace check found');
});

test('the schemas rule out what the contract rules out', () => {
  const check = validator('check'), run = validator('run');
  const pass = cli('check', 'scenarios/races/fault-vs-revoke.yaml', '--json', '--no-states');
  assert.ok(check(pass), errorsOf(check));
  const { sleep_blocked, ...rest } = pass;
  assert.ok(!check({ ...rest, sleepBlocked: sleep_blocked }), 'a camelCase key is refused');
  const doc = cli('run', '--json') as { steps: Array<{ op: string; result: { value?: unknown } }> };
  const mmap = doc.steps.find((s) => s.op === 'mmap')!;
  assert.match(String(mmap.result.value), /^0x/);
  mmap.result.value = { va: 1 };
  assert.ok(!run(doc), 'a value that is neither a number nor 0x-hex is refused');
  mmap.result.value = '0x1000';
  const f = doc.steps.find((s) => (s as { faults?: unknown[] }).faults) as unknown as { faults: Array<{ va: unknown }> };
  f.faults[0].va = 4096;
  assert.ok(!run(doc), 'a fault VA (u64) as a number is refused');
});
