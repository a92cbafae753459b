// Devices from files: a device file used by a scenario (file:, overridden in place), a directory of
// them as profiles (--devices), and problems that name the device file, line and field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import YAML from 'yaml';
import { loadDeviceFile, loadScenarioFile, ScenarioError } from '../src/scenario/loader.ts';
import { deviceJsonSchema } from '../src/scenario/json-schema.ts';
import { runScenario } from '../src/scenario/report.ts';
import { cli, ROOT } from './bundled.ts';


function tmp(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-dev-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}
const ACC = 'id: acc\ntitle: an accelerator\nvendor: 0x1234\ndevice: 0x5678\nbars:\n  - { index: 0, size: 32MiB, bits: 64, prefetchable: true }\n  - { index: 2, size: 64GiB, bits: 64 }\nmsix: { bar: 0, offset: 0x100000, entries: 16 }\n';
const scn = (devices: string) => `name: t\ndevices:\n${devices}\nthreads:\n  main:\n    - open: { path: /dev/vfio/devices/a0, as: a }\n    - ioctl: { fd: a, op: VFIO_DEVICE_GET_REGION_INFO, index: 2, as: r }\n`;

test('a scenario takes a device from a file (relative to it), with fields in place winning', () => {
  const dir = tmp({ 'hw/acc.yaml': ACC, 's.yaml': scn('  - { name: a0, file: hw/acc.yaml, bdf: "0000:5e:00.0" }') });
  try {
    const s = loadScenarioFile(join(dir, 's.yaml'));
    const d = s.devices[0];
    assert.deepEqual([d.name, d.bdf, d.vendor, d.device, d.bars.map((b) => [b.index, b.size])], ['a0', '0000:5e:00.0', 0x1234, 0x5678, [[0, 32 * 2 ** 20], [2, 64 * 2 ** 30]]]);
    assert.deepEqual(d.msix, { bar: 0, offset: 0x100000, entries: 16 });
    const { result } = runScenario(s);
    assert.equal((result.steps[1].result as unknown as { out: { size: string } }).out.size, '0x1000000000');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('problems in a device file name the device file, its line and field; problems of the combination name the scenario', () => {
  const dir = tmp({
    'bad.yaml': 'title: x\nbars:\n  - { index: 0, size: 3MiB }\n',
    'typo.yaml': 'vendor: 1\nbras: []\n',
    's1.yaml': scn('  - { name: a0, file: bad.yaml }'),
    's2.yaml': scn('  - { name: a0, file: typo.yaml }'),
    's3.yaml': scn('  - { name: a0, file: missing.yaml }'),
    'acc.yaml': ACC,
    's4.yaml': scn('  - { name: a0, file: acc.yaml, msix: { bar: 4, offset: 0, entries: 1 } }'),
  });
  const err = (f: string) => {
    try {
      loadScenarioFile(join(dir, f));
    } catch (e) {
      assert.ok(e instanceof ScenarioError, String(e));
      return e.message.replace(dir + '/', '');
    }
    assert.fail(`${f} loaded`);
  };
  try {
    assert.match(err('s1.yaml'), /^bad\.yaml:3: bars\.0: size 3145728 is not a power of two/);
    assert.match(err('s2.yaml'), /^typo\.yaml:2: bras: unknown key bras/);
    assert.match(err('s3.yaml'), /^missing\.yaml: cannot read/);
    assert.match(err('s4.yaml'), /^s4\.yaml:3: devices\.0\.msix\.bar: MSI-X table in BAR4, which the device does not have \(with acc\.yaml\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--devices DIR: each device file is a profile scenarios name; devices lists it; a built-in name is refused', () => {
  const dir = tmp({ 'lab/acc.yaml': ACC, 'lab/nic2.yaml': 'bars: [{ index: 0, size: 128KiB }]\nmsix: null\n', 's.yaml': scn('  - { name: a0, profile: acc }\n  - { name: n0, profile: nic2 }'), 'clash/h100.yaml': ACC.replace('id: acc', 'id: h100') });
  try {
    const without = cli('run', join(dir, 's.yaml'));
    assert.equal(without.status, 2);
    assert.match(without.stderr, /unknown profile acc/);
    const run = cli('run', join(dir, 's.yaml'), '--devices', join(dir, 'lab'));
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /"size":"0x1000000000"/);
    const list = cli('devices', '--devices', join(dir, 'lab'), '--json');
    const ids = (JSON.parse(list.stdout) as Array<{ id: string; title: string }>).map((p) => p.id);
    assert.ok(ids.includes('h100') && ids.includes('acc') && ids.includes('nic2'), ids.join());
    const clash = cli('devices', '--devices', join(dir, 'clash'));
    assert.equal(clash.status, 2);
    assert.match(clash.stderr, /h100\.yaml:1: id: profile h100 is a built-in profile's name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bundled device file loads, validates against schema/device.schema.json, which is what vfio-sim schema device prints', () => {
  const f = loadDeviceFile(join(ROOT, 'devices', 'example-accelerator.yaml'));
  assert.equal(f.id, 'example-accelerator');
  const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'device.schema.json'), 'utf8'));
  assert.deepEqual(schema, deviceJsonSchema(), 'run npm run schema');
  assert.deepEqual(JSON.parse(cli('schema', 'device').stdout), schema);
  const v = new Ajv2020({ strict: false }).compile(schema);
  // parsed as an editor's language server reads it (numbers as numbers)
  assert.ok(v(YAML.parse(readFileSync(join(ROOT, 'devices', 'example-accelerator.yaml'), 'utf8'))), JSON.stringify(v.errors));
  assert.ok(!v({ bras: [] }), 'an unknown field is refused');
  assert.ok(!v({ profile: 'h200' }), 'an unknown profile is refused');
});
