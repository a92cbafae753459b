// vfio-sim conform without QEMU: QEMU twins and their PCI addresses, the compiled program, the
// executor (built and run on this host with a device-less program), the raw facts turned into step
// results, each normalization and the listed/flagged classification, and module order from
// modules.dep. The run against a real kernel in QEMU is `npm run conform` (CI runs it).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario, loadScenarioFile } from '../src/scenario/loader.ts';
import { twinOf, planSlots, type Twin } from '../src/conform/twins.ts';
import { compileScenario, ConformError } from '../src/conform/compile.ts';
import { compareRun, prepare } from '../src/conform/conform.ts';
import { parseRaw, realFault, realStep } from '../src/conform/compare.ts';
import { moduleOrder } from '../src/conform/guest.ts';
import { runScenario } from '../src/scenario/report.ts';
import { parseExpected } from '../src/diff/expected.ts';
import { bundledScenarios } from './bundled.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const devOf = (yaml: string) => parseScenario(`name: x\ndevices:\n${yaml}\nthreads:\n  main:\n    - exit: {}\n`).devices[0];

describe('QEMU twins', () => {
  test('ivshmem: the BAR2 size makes the twin; other devices have none, with the reason', () => {
    const a = twinOf(devOf('  - { name: s, profile: ivshmem }')) as Twin;
    assert.equal(a.key, `ivshmem-${2 ** 31}`);
    assert.deepEqual(a.bars, { 0: 256, 2: 2 ** 31 });
    assert.deepEqual(a.qemu('rp0', 3), ['-object', `memory-backend-ram,id=shm3,size=${2 ** 31},share=on`, '-device', 'ivshmem-plain,memdev=shm3,bus=rp0']);
    const small = twinOf(devOf('  - { name: s, profile: ivshmem, bars: [{ index: 0, size: 256 }, { index: 2, size: 64MiB, bits: 64, prefetchable: true }] }')) as Twin;
    assert.equal(small.key, `ivshmem-${64 * 2 ** 20}`);
    assert.match(twinOf(devOf('  - { name: g, profile: h100 }')) as string, /no QEMU device has vendor:device 10de:2330/);
    assert.match(twinOf(devOf('  - { name: s, profile: ivshmem, bars: [{ index: 0, size: 4KiB }, { index: 2, size: 1GiB, bits: 64 }] }')) as string, /exactly BAR0 \(256 B/);
    assert.equal((twinOf(devOf('  - { name: s, profile: ivshmem, bus: root }')) as Twin).key, `ivshmem-${2 ** 31}@root`);
  });

  test('slots: as many of each twin as one scenario uses at once; root ports number the buses', () => {
    const iv = twinOf(devOf('  - { name: s, profile: ivshmem }')) as Twin;
    const nv = twinOf(devOf('  - { name: n, profile: qemu-nvme }')) as Twin;
    const root = twinOf(devOf('  - { name: s, profile: ivshmem, bus: root }')) as Twin;
    const p = planSlots([{ name: 'a', twins: [iv, iv] }, { name: 'b', twins: [nv, iv] }, { name: 'c', twins: [root] }]);
    assert.deepEqual(p.slots.map((s) => [s.twin.key, s.bdf]), [
      [`ivshmem-${2 ** 31}`, '0000:01:00.0'], [`ivshmem-${2 ** 31}`, '0000:02:00.0'], [`ivshmem-${2 ** 31}@root`, '0000:00:10.0'], ['nvme', '0000:03:00.0'],
    ]);
    assert.deepEqual(p.assign.get('a')!.map((s) => s.bdf), ['0000:01:00.0', '0000:02:00.0']);
    assert.deepEqual(p.assign.get('b')!.map((s) => s.bdf), ['0000:03:00.0', '0000:01:00.0']);
    assert.ok(p.qemu.includes('ivshmem-plain,memdev=shm2,bus=pcie.0,addr=0x10'));
    assert.equal(p.qemu.filter((x) => x.startsWith('pcie-root-port')).length, 3);
  });
});

const PMD_SCN = `
name: pmd
devices:
  - { name: shm, profile: ivshmem }
threads:
  main:
    - open: { path: /dev/vfio/devices/shm, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_GET_REGION_INFO, index: 2, as: r2 }
    - mmap: { fd: dev, offset: r2.offset + 2MiB, length: 4MiB, flags: [shared, fixed_noreplace], addr: 0x7d0000200000, as: m }
    - store: { addr: m, offset: 8, width: 8, value: 0x1122 }
    - config_read: { fd: dev, reg: COMMAND, as: cmd }
    - config_write: { fd: dev, reg: COMMAND, value: cmd - 2 }
    - fork: { as: child }
  child/t:
    - load: { addr: m, offset: 8, width: 8 }
    - exit: {}
`;

describe('compile', () => {
  test('one line per step in the model\'s order, structs built by the model, names left to the executor', () => {
    const scn = parseScenario(PMD_SCN, 'pmd.yaml');
    const p = prepare([scn], 'v7.1');
    const lines = p.program.trim().split('\n');
    assert.deepEqual(lines.slice(0, 5), ['scenario pmd', 'proc main start', 'proc child forked', 'device shm 0000:01:00.0 1af4 1110 0:0x100,2:0x80000000', 'start']);
    assert.equal(lines[5], 'step main main 0 open 0 dev=shm');
    // vfio_region_info: argsz 32, index 2, the rest zero; fields by offset and size
    assert.equal(lines[6], `step main main 1 ioctl 1 fd=+$0 cmd=0x3b6c arg=20000000000000000200000000000000${'0'.repeat(32)} fields=argsz:0:4,flags:4:4,index:8:4,cap_offset:12:4,size:16:8,offset:24:8`);
    assert.equal(lines[7], 'step main main 2 mmap 2 addr=+0x7d0000200000 length=+0x400000 prot=0x3 flags=0x100001 fd=+$0 offset=+$1.offset+0x200000');
    assert.equal(lines[8], 'step main main 3 store -1 addr=+$2+0x8 width=8 value=+0x1122');
    assert.equal(lines[9], 'step main main 4 config_read 3 fd=+$0 off=0x4 width=2');
    assert.equal(lines[10], 'step main main 5 config_write -1 fd=+$0 off=0x4 width=2 value=+$3-0x2');
    assert.equal(lines[11], 'step main main 6 fork 4 as=child');
    assert.equal(lines[12], 'step child child/t 0 load -1 addr=+$2+0x8 width=8');
    assert.equal(lines.at(-1), 'end');
  });

  test('named registers sit where the device puts them: PM_CTRL of QEMU\'s nvme is at 0x60 + 4', () => {
    const scn = parseScenario('name: n\ndevices:\n  - { name: n0, profile: qemu-nvme }\nthreads:\n  main:\n    - open: { path: /dev/vfio/devices/n0, as: d }\n    - config_read: { fd: d, reg: PM_CTRL }\n    - config_read: { fd: d, reg: DEVCTL }\n', 'n.yaml');
    const p = prepare([scn], 'v7.1');
    assert.match(p.program, /config_read -1 fd=\+\$0 off=0x64 width=2/);
    assert.match(p.program, /config_read -1 fd=\+\$0 off=0x88 width=2/);
    // and the model reads the same registers: PM_CTRL D0, DEVCTL 0
    assert.deepEqual(p.models[0].model.steps.slice(1).map((s) => s.result), [{ ok: true, value: 0x8 }, { ok: true, value: 0 }]);
  });

  test('what the executor cannot do is refused with the file, line and reason', () => {
    const scn = parseScenario('name: i\ndevices:\n  - { name: shm, profile: ivshmem }\nthreads:\n  main:\n    - iommufd_open: { as: ictx }\n', 'i.yaml');
    assert.throws(() => prepare([scn], 'v7.1'), (e: Error) => e instanceof ConformError && /i\.yaml:6: iommufd_open: the executor has no iommufd_open/.test(e.message));
    const gpu = parseScenario('name: g\ndevices:\n  - { name: g, profile: h100 }\nthreads:\n  main:\n    - exit: {}\n', 'g.yaml');
    assert.throws(() => prepare([gpu], 'v7.1'), /g\.yaml: device g: no QEMU twin/);
  });

  test('every bundled conformance scenario compiles', () => {
    const files = bundledScenarios('scenarios/conform');
    assert.ok(files.length >= 25, `${files.length} conformance scenarios`);
    const p = prepare(files.map((f) => loadScenarioFile(f)), 'v7.1');
    assert.equal(p.program.split('\n').filter((l) => l.startsWith('scenario ')).length, files.length);
  });
});

describe('raw facts as step results', () => {
  test('faults: aligned VA, pgoff from vm_start as a u64, outcome from the return value', () => {
    assert.deepEqual(realFault({ addr: '0x7d0000201008', start: '0x7d0000200000', order: 18, ret: '0x800' }), { va: '0x7d0000000000', order: 18, pgoff: '0xfffffffffffffe00', pfn: null, outcome: 'FALLBACK' });
    assert.deepEqual(realFault({ addr: '0x7d0000401008', start: '0x7d0000200000', order: 9, ret: '0x100' }), { va: '0x7d0000400000', order: 9, pgoff: '0x200', pfn: null, outcome: 'NOPAGE' });
    assert.equal(realFault({ addr: '0x1000', start: '0x1000', order: 0, ret: '0x2' }).outcome, 'SIGBUS');
  });

  test('signals, errnos, ioctl structs and config reads', () => {
    const scn = parseScenario(PMD_SCN, 'pmd.yaml');
    const [, ioctl, , store, cfg] = scn.threads[0].steps;
    const s = realStep({ thread: 'main', index: 3, op: 'store', signal: 7, si_code: 2, si_addr: '0x7d0000200008', faults: [] }, store);
    assert.deepEqual([s.result, s.detail], [{ signal: 'SIGBUS' }, 'BUS_ADRERR at 0x7d0000200008']);
    assert.deepEqual(realStep({ thread: 'main', index: 1, op: 'ioctl', errno: 22 }, ioctl).result, { errno: 'EINVAL' });
    const r = realStep({ thread: 'main', index: 1, op: 'ioctl', ret: '0x0', buf: '2000000007000000020000000000000000000080000000000000000000020000' }, ioctl);
    assert.deepEqual(r.result, { ok: true, value: 0, out: { argsz: 32, flags: 7, index: 2, cap_offset: 0, size: '0x80000000', offset: '0x20000000000' } });
    assert.deepEqual(realStep({ thread: 'main', index: 4, op: 'config_read', ret: '0x2', buf: '0301' }, cfg).result, { ok: true, value: 0x103 });
  });
});

describe('comparison', () => {
  const EXPECTED = parseExpected(`differences:
  - id: listed-one
    match: { scenario: pmd, op: config_read, kind: result, field: value }
    kernels: [v7.1, 'linux-*']
    reason: a difference written down for the test
    spec: docs/model-decisions.md (observed on Linux 6.12 in QEMU, scenarios/conform/ioctls-ivshmem.yaml)
`);
  const scn = parseScenario(PMD_SCN, 'pmd.yaml');
  const p = prepare([scn], 'v7.1');
  const line = (o: object) => JSON.stringify(o);
  const raw = (over: Record<string, object> = {}) => {
    const steps: Record<string, object> = {
      'main[0]': { ret: '0xb' }, // another fd number than the model's 3: normalized
      'main[1]': { ret: '0x0', buf: '2000000007000000020000000000000000000080000000000000000000020000' },
      'main[2]': { ret: '0x7d0000200000' },
      'main[3]': { ret: '0x0', faults: [{ addr: '0x7d0000200008', start: '0x7d0000200000', order: 18, ret: '0x800' }, { addr: '0x7d0000200008', start: '0x7d0000200000', order: 9, ret: '0x100' }] },
      'main[4]': { ret: '0x2', buf: '0201' },
      'main[5]': { ret: '0x2', faults: [] },
      'main[6]': { ret: '0x4d2' }, // a pid
      // COMMAND.MEMORY is off: the child's load SIGBUSes at order 9
      'child/t[0]': { signal: 7, si_code: 2, si_addr: '0x7d0000200008', faults: [{ addr: '0x7d0000200008', start: '0x7d0000200000', order: 9, ret: '0x2' }] },
      'child/t[1]': { ret: '0x0' },
      ...over,
    };
    const body = Object.entries(steps).map(([k, v]) => {
      const [, thread, index] = /^(.*)\[(\d+)\]$/.exec(k)!;
      return line({ thread, index: Number(index), op: 'x', faults: [], ...v });
    });
    return parseRaw([line({ executor: 'vfio-sim-exec', kernel: '6.12.0-test', fault_probe: true }), line({ scenario: 'pmd' }), ...body, line({ end: 'pmd' })].join('\n'));
  };

  test('the model\'s own answers as the real kernel\'s: nothing flagged, one listed (COMMAND 0x102 vs 0x103)', () => {
    const r = compareRun(p, raw(), { modelKernel: 'v7.1', expected: EXPECTED });
    const diffs = r.scenarios[0].steps.flatMap((s) => s.differences);
    assert.deepEqual(diffs.map((d) => [d.where, d.kind, d.field, d.class, d.rule]), [['main[4]', 'result', 'value', 'expected', 'listed-one']]);
    assert.equal(r.exit, 0);
  });

  test('a different fault sequence, a load that works where the model SIGBUSes, and a step the executor lost are flagged', () => {
    const r = compareRun(p, raw({
      'main[3]': { ret: '0x0', faults: [{ addr: '0x7d0000200008', start: '0x7d0000200000', order: 0, ret: '0x100' }] },
      'child/t[0]': { ret: '0x1122', faults: [] },
      'child/t[1]': { error: 'process child is gone' },
    }), { modelKernel: 'v7.1', expected: EXPECTED });
    const flagged = r.scenarios[0].steps.flatMap((s) => s.differences).filter((d) => d.class === 'flagged');
    assert.deepEqual(flagged.map((d) => [d.where, d.kind, d.field]), [
      ['main[3]', 'faults', 'sequence'], ['child/t[0]', 'result', 'outcome'], ['child/t[0]', 'faults', 'sequence'], ['child/t[1]', 'result', 'outcome'],
    ]);
    assert.deepEqual(flagged[1].values, { model: 'SIGBUS', real: 'ok 0x1122' });
    assert.equal(flagged[0].values.real, '0@0x0->NOPAGE');
    assert.equal(r.exit, 1);
  });

  test('a mapping the kernel placed: VA compared mod 2 MiB, huge-order fallbacks left out', () => {
    const s2 = parseScenario(PMD_SCN.replace('flags: [shared, fixed_noreplace], addr: 0x7d0000200000, ', ''), 'pmd.yaml');
    const p2 = prepare([s2], 'v7.1');
    const model = p2.models[0].model.steps;
    const va = BigInt(model[2].result && 'ok' in model[2].result ? String(model[2].result.value) : '0');
    const other = `0x${(va + 0x1234000000n).toString(16)}`; // same offset in its 2 MiB page
    const same = compareRun(p2, raw({ 'main[2]': { ret: other }, 'main[3]': { ret: '0x0', faults: [{ addr: other, start: other, order: 9, ret: '0x100' }] } }), { modelKernel: 'v7.1', expected: EXPECTED });
    assert.deepEqual(same.scenarios[0].steps.slice(2, 4).flatMap((s) => s.differences), []);
    const moved = compareRun(p2, raw({ 'main[2]': { ret: `0x${(va + 0x1000n).toString(16)}` } }), { modelKernel: 'v7.1', expected: EXPECTED });
    assert.equal(moved.scenarios[0].steps[2].differences[0]?.field, 'value');
  });
});

describe('the executor on this host (no devices, no fault probe)', () => {
  let bin = '';
  before(() => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-exec-'));
    bin = join(dir, 'exec');
    const r = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter', '-o', bin, join(ROOT, 'src/conform/guest/exec.c')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  test('anonymous memory, fork, a SIGSEGV and an errno: compiled, executed and compared with the model', () => {
    const scn = parseScenario(`
name: host
devices:
  - { name: shm, profile: ivshmem }
threads:
  main:
    - mmap: { length: 8KiB, flags: [private, anonymous], as: buf }
    - store: { addr: buf, offset: 8, width: 8, value: 0xfedcba9876543210 }
    - load: { addr: buf, offset: 8, width: 8 }
    - fork: { as: child }
    - load: { addr: 0x10, width: 4 }
    - open: { path: /nonexistent, as: nofd }
    - munmap: { addr: buf, length: 8KiB }
    - load: { addr: buf, width: 1 }
  child/t:
    - load: { addr: buf, offset: 8, width: 4 }
    - exit: {}
`, 'host.yaml');
    // the device is declared (every scenario has one) but never opened: no device line needed
    const model = runScenario(scn, { kernel: 'v7.1' }).result;
    const c = compileScenario({ ...scn, devices: [] }, model.steps, []);
    const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-prog-'));
    writeFileSync(join(dir, 'p.txt'), c.text);
    const r = spawnSync(bin, ['--no-probe', join(dir, 'p.txt')], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, r.stderr);
    const rawRun = parseRaw(r.stdout);
    assert.equal(rawRun.faultProbe, false);
    const rep = compareRun({ models: [{ scn: { ...scn, devices: [] }, model }], plan: { slots: [], assign: new Map([['host', []]]), qemu: [] }, program: c.text }, rawRun, { modelKernel: 'v7.1', expected: [] });
    const s = rep.scenarios[0];
    assert.deepEqual(s.steps.map((x) => x.real && ('ok' in x.real.result ? 'ok' : 'errno' in x.real.result ? x.real.result.errno : x.real.result.signal)),
      ['ok', 'ok', 'ok', 'ok', 'ok', 'SIGSEGV', 'ENOENT', 'ok', 'ok', 'SIGSEGV']);
    assert.deepEqual(s.steps.flatMap((x) => x.differences), [], JSON.stringify(s.steps.flatMap((x) => x.differences)));
    assert.equal(rep.exit, 0);
  });
});

test('modules.dep: the vfio modules and type1, dependencies first, built-ins skipped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-mods-'));
  mkdirSync(join(dir, 'kernel'));
  writeFileSync(join(dir, 'modules.dep'), [
    'kernel/drivers/vfio/vfio.ko.xz:',
    'kernel/drivers/vfio/vfio_iommu_type1.ko.xz: kernel/drivers/vfio/vfio.ko.xz',
    'kernel/drivers/vfio/pci/vfio-pci-core.ko.xz: kernel/drivers/vfio/vfio.ko.xz kernel/virt/lib/irqbypass.ko.xz',
    'kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz kernel/drivers/vfio/vfio.ko.xz kernel/virt/lib/irqbypass.ko.xz',
    'kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz',
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'modules.builtin'), 'kernel/virt/lib/irqbypass.ko\n');
  assert.deepEqual(moduleOrder(dir), [
    'kernel/drivers/vfio/vfio.ko.xz', 'kernel/drivers/vfio/vfio_iommu_type1.ko.xz', 'kernel/virt/lib/irqbypass.ko.xz',
    'kernel/drivers/vfio/pci/vfio-pci-core.ko.xz', 'kernel/drivers/vfio/pci/vfio-pci.ko.xz',
  ]);
});
