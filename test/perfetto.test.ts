// --perfetto: the Trace Event Format that ui.perfetto.dev and chrome://tracing load, checked against
// the format's rules (a zod schema of its events, slices that nest on a track, async begin/end
// pairs, one name per track) and against the run it traces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { perfettoTrace, type TraceDoc } from '../src/report/perfetto.ts';
import { loadScenarioFile } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'vfio-sim.js');

/** The Trace Event Format's events, as documented (the JSON Object Format with traceEvents). */
const base = { name: z.string().min(1), pid: z.number().int().nonnegative(), tid: z.number().int().nonnegative(), cat: z.string().optional(), args: z.record(z.string(), z.unknown()).optional() };
const event = z.discriminatedUnion('ph', [
  z.object({ ...base, ph: z.literal('X'), ts: z.number().nonnegative(), dur: z.number().positive() }).strict(),
  z.object({ ...base, ph: z.literal('b'), ts: z.number().nonnegative(), id: z.string(), cat: z.string() }).strict(),
  z.object({ ...base, ph: z.literal('e'), ts: z.number().nonnegative(), id: z.string(), cat: z.string() }).strict(),
  z.object({ ...base, ph: z.literal('i'), ts: z.number().nonnegative(), s: z.enum(['t', 'p', 'g']) }).strict(),
  z.object({ ...base, tid: base.tid.optional(), ph: z.literal('M'), name: z.enum(['process_name', 'thread_name']), args: z.object({ name: z.string() }).strict() }).strict(),
]);
const doc = z.object({ traceEvents: z.array(event).min(1), displayTimeUnit: z.enum(['ns', 'ms']), metadata: z.record(z.string(), z.unknown()) }).strict();

function wellFormed(d: TraceDoc): void {
  doc.parse(d);
  const evs = d.traceEvents;
  // one name per track, and every event on a named track
  const named = new Set<string>();
  for (const e of evs.filter((x) => x.name === 'thread_name')) {
    const k = `${e.pid}/${e.tid}`;
    assert.ok(!named.has(k), `track ${k} named twice`);
    named.add(k);
  }
  for (const e of evs.filter((x) => x.ph !== 'M')) assert.ok(named.has(`${e.pid}/${e.tid}`), `${e.name} on an unnamed track`);
  // complete slices nest on their track: none overlaps another only in part
  const byTrack = new Map<string, Array<{ a: number; b: number; name: string }>>();
  for (const e of evs.filter((x) => x.ph === 'X')) {
    const k = `${e.pid}/${e.tid}`;
    if (!byTrack.has(k)) byTrack.set(k, []);
    byTrack.get(k)!.push({ a: e.ts!, b: e.ts! + e.dur!, name: e.name });
  }
  for (const xs of byTrack.values())
    for (const x of xs) for (const y of xs) if (x.a < y.a && y.a < x.b && x.b < y.b) assert.fail(`slices ${x.name} and ${y.name} overlap without nesting`);
  // async slices: each begin has one end, later, with the same id
  const open = new Map<string, number>();
  for (const e of evs.filter((x) => x.ph === 'b' || x.ph === 'e').sort((p, q) => p.ts! - q.ts! || (p.ph === 'e' ? -1 : 1))) {
    if (e.ph === 'b') {
      assert.ok(!open.has(e.id!), `${e.id} begun twice`);
      open.set(e.id!, e.ts!);
    } else {
      assert.ok(open.has(e.id!), `${e.id} ends without a begin`);
      assert.ok(e.ts! >= open.get(e.id!)!);
      open.delete(e.id!);
    }
  }
  assert.deepEqual([...open.keys()], [], 'every lock hold ends');
}

test('a run: every operation a slice named by its call, with its result; steps inside; lock holds paired', () => {
  const scn = loadScenarioFile(join(ROOT, 'scenarios', 'quickstart.yaml'));
  const d = perfettoTrace(scn, { kernel: 'series-v8' });
  wellFormed(d);
  const ops = d.traceEvents.filter((e) => e.cat === 'operation');
  const { result } = runScenario(scn, { kernel: 'series-v8' });
  assert.deepEqual(ops.map((e) => e.name), result.steps.map((s) => s.call));
  assert.ok(d.traceEvents.some((e) => e.cat === 'lock' && /mmap_lock/.test(e.name)), 'mmap_lock holds shown');
  assert.ok(d.traceEvents.some((e) => e.cat === 'fault'), 'faults shown');
});

test('check --perfetto: the counterexample of M1, with the violation as an instant at its last step', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-pf-'));
  try {
    const out = join(dir, 'cex.json');
    const r = spawnSync(process.execPath, [BIN, 'check', 'scenarios/races/fault-vs-perm-revoke.yaml', '--mutant', 'M1', '--perfetto', out], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    const d = JSON.parse(readFileSync(out, 'utf8')) as TraceDoc;
    wellFormed(d);
    const v = d.traceEvents.filter((e) => e.cat === 'violation');
    assert.equal(v.length, 1);
    assert.match(v[0].name, /^no-stale-pte: /);
    const last = Math.max(...d.traceEvents.filter((e) => e.cat === 'step').map((e) => e.ts! + e.dur!));
    assert.equal(v[0].ts, last, 'at the step that broke it');
    const threads = d.traceEvents.filter((e) => e.name === 'thread_name').map((e) => e.args!.name).sort();
    assert.deepEqual(threads, ['client', 'owner', 'setup']);
    // without a counterexample, check writes nothing and says so
    const none = spawnSync(process.execPath, [BIN, 'check', 'scenarios/races/fault-vs-perm-revoke.yaml', '--perfetto', join(dir, 'none.json')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(none.status, 0);
    assert.match(none.stderr, /no counterexample: no trace written/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
