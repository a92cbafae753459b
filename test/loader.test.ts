// Scenario loading: every invalid scenario is refused with a message that names the file, the line
// and the field (README, "The command": exit 2 "invalid scenario (the message names file, line and
// field)"), and the CLI turns that into exit status 2 with the message on stderr.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario, ScenarioError } from '../src/scenario/loader.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'vfio-sim.js');

/** Parse and return the ScenarioError (failing the test if there is none). */
function parseError(src: string, file: string): ScenarioError {
  try {
    parseScenario(src, file);
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${e}`);
    return e;
  }
  assert.fail('the scenario was accepted');
}
/** The error names file, line and field, in the message too ("file:line: field: problem"). */
function expectError(src: string, line: number, field: string, problem: RegExp): ScenarioError {
  const file = `/scenarios/case-${line}.yaml`;
  const e = parseError(src, file);
  assert.equal(e.file, file);
  assert.equal(e.line, line, `line (message: ${e.message})`);
  assert.equal(e.field, field, `field (message: ${e.message})`);
  assert.match(e.problem, problem);
  assert.ok(e.message.startsWith(`${file}:${line}: ${field ? `${field}: ` : ''}`), e.message);
  return e;
}

const HEAD = `name: t
devices:
  - { name: gpu0, profile: h100 }
threads:
  main:
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
`;

describe('parseScenario errors name file, line and field', () => {
  test('a valid scenario parses (the baseline the error cases differ from)', () => {
    const s = parseScenario(HEAD + '    - mmap: { fd: dev, offset: 0, length: 2MiB, prot: [read], flags: [shared], as: m }\n    - load: { addr: m, width: 4 }\n', 'ok.yaml');
    assert.equal(s.name, 't');
    assert.equal(s.threads[0].steps.length, 3);
    assert.equal(s.threads[0].steps[2].line, 8);
    assert.equal(s.devices[0].bars.find((b) => b.index === 2)!.size, 128 * 2 ** 30);
  });

  test('bad YAML: a duplicate key (line of the second key)', () => {
    const e = expectError('name: x\ndevices:\n  - { name: gpu0, profile: h100 }\nname: y\nthreads:\n  main: []\n', 4, '', /YAML/);
    assert.match(e.problem, /unique/i);
  });

  test('bad YAML: an unterminated flow map', () => {
    expectError(HEAD + '    - load: { addr: 0x1000, width: 4 ]\n', 7, '', /YAML/);
  });

  test('an unknown operation', () => {
    const e = expectError(HEAD + '    - frobnicate: { fd: dev }\n', 7, 'threads.main.1', /unknown operation "frobnicate"/);
    assert.match(e.problem, /mmap/, 'the message lists the known operations');
  });

  /** An unknown key: the file, the key's line, a field path down to (at least) the map holding it, the key named. */
  function expectUnknownKey(src: string, line: number, fieldPrefix: string, key: string): void {
    const e = parseError(src, 'k.yaml');
    assert.equal(e.file, 'k.yaml');
    assert.equal(e.line, line, e.message);
    assert.ok(e.field === fieldPrefix || e.field.startsWith(`${fieldPrefix}.`), `field ${e.field} should be under ${fieldPrefix}`);
    assert.ok(e.message.startsWith(`k.yaml:${line}: ${fieldPrefix}`), e.message);
    assert.match(e.message, new RegExp(`"?${key}"?`));
  }

  test('an unknown key in a step', () => {
    expectUnknownKey(HEAD + '    - mmap: { fd: dev, length: 4096, bogus: 1 }\n', 7, 'threads.main.1.mmap', 'bogus');
  });

  test('an unknown key in a device and in a BAR', () => {
    expectUnknownKey('name: x\ndevices:\n  - { name: gpu0, profile: h100, colour: blue }\nthreads:\n  main: []\n', 3, 'devices.0', 'colour');
    expectUnknownKey('name: x\ndevices:\n  - name: gpu0\n    bars: [{ index: 0, size: 4KiB, cached: true }]\nthreads:\n  main: []\n', 4, 'devices.0.bars.0', 'cached');
  });

  // README, "The command": the message names file, line and field. For an unknown key the field is the key and
  // its line is the key's own line; the loader points at the enclosing map instead (zod reports
  // unrecognized keys at the object's path). Same line for flow maps, so only block maps show it.
  test('an unknown key in a multi-line map is reported at the key\'s own line, naming it as the field', () => {
    const dev = 'name: x\ndevices:\n  - name: gpu0\n    profile: h100\n    colour: blue\nthreads:\n  main: []\n';
    const e = parseError(dev, 'dev.yaml');
    assert.equal(e.line, 5);
    assert.equal(e.field, 'devices.0.colour');
    const step = HEAD + '    - mmap:\n        fd: dev\n        length: 4096\n        bogus: 1\n';
    const e2 = parseError(step, 'step.yaml');
    assert.equal(e2.line, 10);
    assert.equal(e2.field, 'threads.main.1.mmap.bogus');
    const top = parseError('name: x\ncolour: blue\ndevices:\n  - { name: gpu0, profile: h100 }\nthreads:\n  main: []\n', 'top.yaml');
    assert.equal(top.line, 2);
    assert.equal(top.field, 'colour');
  });

  test('a name used but never bound by an "as:"', () => {
    expectError(HEAD + '    - load: { addr: m, offset: 0x10 }\n', 7, 'threads.main.1.load.addr', /"m" is not bound/);
    // inside an expression and in a ranges list too
    expectError(HEAD + '    - munmap: { addr: base + 2MiB, length: 4096 }\n', 7, 'threads.main.1.munmap.addr', /"base"/);
    expectError(HEAD + '    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 2, ranges: [{ offset: r.offset, length: 2MiB }] }\n', 7, 'threads.main.1.ioctl.ranges', /"r"/);
  });

  test('a name bound in another thread or in setup is fine', () => {
    const src = `name: t
devices:
  - { name: gpu0, profile: h100 }
setup:
  - open: { path: /dev/vfio/devices/gpu0, as: dev }
threads:
  a:
    - mmap: { fd: dev, length: 2MiB, prot: [read], flags: [shared], as: m }
  b:
    - load: { addr: m }
`;
    assert.equal(parseScenario(src, 'x.yaml').threads.length, 2);
  });

  test('a BAR size that is not a power of two', () => {
    const src = `name: x
devices:
  - name: gpu0
    bars:
      - { index: 0, size: 16MiB }
      - { index: 2, size: 3MiB, bits: 64 }
threads:
  main: []
`;
    expectError(src, 6, 'devices.0.bars.1', /not a power of two/);
  });

  test('overlapping 64-bit BAR slots (a 64-bit BAR0 takes slot 1 too)', () => {
    const src = `name: x
devices:
  - name: gpu0
    bars:
      - { index: 0, size: 16MiB, bits: 64 }
      - { index: 1, size: 1MiB }
threads:
  main: []
`;
    expectError(src, 6, 'devices.0.bars.1', /slot 1/);
    const two64 = src.replace('{ index: 1, size: 1MiB }', '{ index: 1, size: 1MiB, bits: 64 }');
    expectError(two64, 6, 'devices.0.bars.1', /slot 1/);
    // and a 64-bit BAR cannot start in the last slot
    expectError(src.replace('{ index: 0, size: 16MiB, bits: 64 }', '{ index: 5, size: 16MiB, bits: 64 }'), 5, 'devices.0.bars.0', /two slots|index 5/);
  });

  test('an MSI-X table that does not fit in its BAR, or sits in a BAR the device lacks', () => {
    const src = `name: x
devices:
  - name: gpu0
    bars:
      - { index: 0, size: 16KiB }
    msix:
      bar: 0
      offset: 0x3f00
      entries: 17
threads:
  main: []
`;
    expectError(src, 8, 'devices.0.msix.offset', /does not fit in BAR0/);
    // 17 entries at 0x2000 fit (the SN350 layout)
    assert.ok(parseScenario(src.replace('0x3f00', '0x2000'), 'ok.yaml'));
    // exactly at the end: 0x4000 - 17*16 = 0x3ef0 fits, 0x3ef8 does not
    assert.ok(parseScenario(src.replace('0x3f00', '0x3ef0'), 'ok.yaml'));
    expectError(src.replace('0x3f00', '0x3ef8'), 8, 'devices.0.msix.offset', /does not fit/);
    expectError(src.replace('bar: 0', 'bar: 2'), 7, 'devices.0.msix.bar', /BAR2/);
  });

  test('a step that is not a one-key map, and a device field of the wrong shape', () => {
    expectError(HEAD + '    - { load: { addr: 1 }, store: { addr: 1, value: 2 } }\n', 7, 'threads.main.1', /one-key map/);
    expectError('name: x\ndevices:\n  - { name: gpu0, profile: h100, bdf: "3b:00.0" }\nthreads:\n  main: []\n', 3, 'devices.0.bdf', /PCI address/);
  });
});

describe('vfio-sim run on an invalid scenario', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-loader-'));
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'run', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

  test('exits 2 with "file:line: field: problem" on stderr and nothing on stdout', () => {
    const file = join(dir, 'bad-op.yaml');
    writeFileSync(file, HEAD + '    - frobnicate: { fd: dev }\n');
    const r = run(file);
    assert.equal(r.status, 2, `stderr: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:7: threads\\.main\\.1: unknown operation "frobnicate"`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '');
  });

  test('the same with --json, for a bad BAR', () => {
    const file = join(dir, 'bad-bar.yaml');
    writeFileSync(file, 'name: x\ndevices:\n  - name: gpu0\n    bars:\n      - { index: 0, size: 3MiB }\nthreads:\n  main: []\n');
    const r = run(file, '--json');
    assert.equal(r.status, 2, `stderr: ${r.stderr}`);
    assert.match(r.stderr, /bad-bar\.yaml:5: devices\.0\.bars\.0: size 3145728 is not a power of two/);
    assert.equal(r.stdout, '');
  });

  test('a file that cannot be read exits 2 and names it', () => {
    const file = join(dir, 'missing.yaml');
    const r = run(file);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /missing\.yaml/);
  });

  test('a valid scenario exits 0 (so exit 2 above is about the input, not the command)', () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, HEAD + '    - close: { fd: dev, expect: { ok: true } }\n');
    const r = run(file, '--json');
    assert.equal(r.status, 0, `stderr: ${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.equal(out.scenario, 't');
    assert.deepEqual(out.steps.map((s: { op: string }) => s.op), ['open', 'close']);
  });
});

describe('widths and names fuzzing found accepted', () => {
  test('a load, store or config width other than the ones hardware has is refused, not run', () => {
    expectError(HEAD + '    - load: { addr: 0x1000, width: 3 }\n', 7, 'threads.main.1.load.width', /width of 1, 2, 4, 8/);
    expectError(HEAD + '    - store: { addr: 0x1000, width: 1000000000, value: 1 }\n', 7, 'threads.main.1.store.width', /width/);
    expectError(HEAD + '    - store: { addr: 0x1000, width: -4, value: 1 }\n', 7, 'threads.main.1.store.width', /width/);
    expectError(HEAD + '    - config_write: { fd: dev, reg: COMMAND, value: 2, width: 8 }\n', 7, 'threads.main.1.config_write.width', /width of 1, 2, 4 /);
    assert.ok(parseScenario(HEAD + '    - config_write: { fd: dev, reg: COMMAND, value: 2, width: 2 }\n', 'ok.yaml'));
  });

  test('a name bound by as: cannot contain -, which an expression would read as a minus', () => {
    expectError(HEAD + '    - open: { path: /dev/vfio/devices/gpu0, as: dev-2 }\n', 7, 'threads.main.1.open.as', /would read as minus/);
    // event names are never read by expressions and keep their dashes
    assert.ok(parseScenario(HEAD + '    - post: { event: a-done }\n', 'ok.yaml'));
  });
});

describe('names the loader used to trip over', () => {
  test('operation names that are Object.prototype keys are unknown operations, not crashes', () => {
    for (const op of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) expectError(HEAD + `    - ${op}: {}\n`, 7, 'threads.main.1', new RegExp(`unknown operation "${op}"`));
    expectError(HEAD + '    - mmapp: {}\n', 7, 'threads.main.1', /did you mean mmap\?/);
  });

  test('a misspelt ioctl or device feature is refused with a suggestion; a number or a bound name still goes through', () => {
    expectError(HEAD + '    - ioctl: { fd: dev, op: VFIO_DEVICE_RESTE }\n', 7, 'threads.main.1.ioctl.op', /unknown ioctl VFIO_DEVICE_RESTE, did you mean VFIO_DEVICE_RESET\?/);
    expectError(HEAD + '    - ioctl: { fd: dev, op: "a b c" }\n', 7, 'threads.main.1.ioctl.op', /unknown ioctl a b c/);
    expectError(HEAD + '    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUFF }\n', 7, 'threads.main.1.ioctl.feature', /did you mean DMA_BUF\?/);
    expectError(HEAD + '    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: "1+" }\n', 7, 'threads.main.1.ioctl.feature', /unknown device feature/);
    assert.ok(parseScenario(HEAD + '    - ioctl: { fd: dev, op: 0x3b6f }\n', 'ok.yaml'));
    assert.ok(parseScenario(HEAD + '    - ioctl: { fd: dev, op: dev }\n', 'ok.yaml'));
  });

  test('an alias without its anchor, and an alias bomb, are invalid YAML at the alias, not exceptions', () => {
    expectError(HEAD + '    - load: *nope\n', 7, '', /YAML: Unresolved alias/);
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [n, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd']]) rows.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    const e = parseError(`name: t\n${rows.join('\n')}\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n`, 'bomb.yaml');
    assert.match(e.problem, /YAML: Excessive alias count/);
    assert.equal(e.line, 3);
  });
});

describe('process and finding names', () => {
  test('fork into the forking thread\'s own process, into main, or into a process forked already, is refused', () => {
    expectError(HEAD + '    - fork: { as: main }\n', 7, 'threads.main.1.fork.as', /new process; main is the forking thread's own/);
    expectError(HEAD + '    - fork: { as: a }\n    - fork: { as: a }\n', 8, 'threads.main.2.fork.as', /process a is forked twice/);
    assert.ok(parseScenario(HEAD + '    - fork: { as: a }\n    - fork: { as: b }\n', 'ok.yaml'));
  });

  test('expect_violations names known kernels and invariants only', () => {
    expectError(HEAD + 'expect_violations:\n  series-v9: [no-deadlock]\n', 8, 'expect_violations.series-v9', /unknown kernel series-v9, did you mean series-v4\?/);
    expectError(HEAD + 'expect_violations:\n  series-v4: [no-stale-ptes]\n', 8, 'expect_violations.series-v4.0', /unknown invariant no-stale-ptes, did you mean no-stale-pte\?/);
    expectError(HEAD + "expect_violations:\n  series-v4: [{ invariant: no-stale-ptes, message: '*' }]\n", 8, 'expect_violations.series-v4.0.invariant', /unknown invariant no-stale-ptes/);
    assert.ok(parseScenario(HEAD + "expect_violations:\n  '*': [lifetime]\n", 'ok.yaml'));
  });
});

describe('device and configuration values fuzzing found accepted, or refused without a line', () => {
  const DEV = (d: string) => `name: t\ndevices:\n  - ${d}\nthreads:\n  main:\n    - open: { path: /dev/vfio/devices/gpu0, as: dev }\n`;
  test('a BAR larger than 64 bits can size, and an MSI-X table at a negative offset, are refused', () => {
    expectError(DEV('{ name: gpu0, profile: h100, bars: [{ index: 0, size: 0x100000000000000000, bits: 64 }] }'), 3, 'devices.0.bars.0', /does not fit a 64-bit BAR/);
    expectError(DEV('{ name: gpu0, profile: h100, msix: { bar: 0, offset: -16, entries: 4 } }'), 3, 'devices.0.msix.offset', /does not fit/);
  });
  test('a bad config: names the file, the line and the symbol', () => {
    expectError(HEAD + 'config: { THP: always }\n', 7, 'config.THP', /unknown symbol/);
    expectError(HEAD + 'config:\n  PCI_P2PDMA: n\n  VFIO_PCI_DMABUF: y\n', 9, 'config.VFIO_PCI_DMABUF', /def_bool y if PCI_P2PDMA/);
  });
});
