// KVM as a secondary MMU (virt/kvm/kvm_main.c, arch/x86/kvm/mmu/, mm/mmu_notifier.c): memory slots
// and their errnos, guest accesses through the second-stage table, the MMU notifier of every host
// zap removing second-stage entries, the invariants over guest entries, and the v4 zap-range finding
// as a guest sees it, per kernel.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenarioFile, parseScenario } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';
import { checkInvariants } from '../src/kernel/invariants.ts';
import { exploreDpor } from '../src/explore/explorer.ts';
import type { Kernel } from '../src/kernel/kernel.ts';
import type { Kvm } from '../src/kernel/kvm/kvm_main.ts';
import { KVM_CREATE_VM, KVM_GET_API_VERSION, KVM_RUN, KVM_SET_USER_MEMORY_REGION, kvm_userspace_memory_region } from '../src/uapi/kvm.ts';

const GUEST = 'scenarios/vmm/guest-bar2-memory-disable.yaml';
const RESET = 'scenarios/vmm/guest-running-across-reset.yaml';
const GiB = 2 ** 30;

/** Run YAML (one thread `main`, an h100 `gpu0`) and return its results and the kernel it ends in. */
function run(steps: string, kernel = 'v7.1') {
  const scn = parseScenario(`name: t\ndevices:\n  - { name: gpu0, profile: h100 }\nthreads:\n  main:\n${steps}`, 'kvm.yaml');
  const { run: r, result } = runScenario(scn, { kernel });
  return { k: r.k, result, step: (i: number) => result.steps[i] };
}
const vmOf = (k: Kernel): Kvm => [...k.kvms][0];
/** The second-stage entries of the (only) VM: [gpa, order, pfn]. */
const ept = (k: Kernel) => [...vmOf(k).ept.entries()].map((e) => [e.va, e.order, e.pfn]);

/** A VMM with BAR2 (4 MiB at BAR offset 0) as memslot 1 at 4 GiB and 2 MiB of RAM as memslot 0. */
const VMM = `
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_GET_REGION_INFO, index: 2, as: r2 }
    - mmap: { fd: dev, offset: r2.offset, length: 4MiB, as: bar2 }
    - mmap: { length: 2MiB, prot: [read, write], flags: [private, anonymous], as: ram }
    - kvm_create_vm: { as: vm }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, addr: ram, length: 2MiB, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 1, gpa: 4GiB, addr: bar2, length: 4MiB, expect: { ok: true } }
    - guest_store: { vm: vm, gpa: 4GiB, offset: 0x100, width: 4, value: 0x1234, expect: { ok: true } }
    - guest_store: { vm: vm, gpa: 0x3000, width: 4, value: 0x5678, expect: { ok: true } }
`;
/** gpu0's BAR2 (64-bit, 128 GiB on the h100 profile) starts at pfn 0x20000000. */
const BAR2_PFN = 0x20000000;

test('uAPI numbers and layout of <linux/kvm.h>', () => {
  assert.equal(KVM_GET_API_VERSION, 0xae00);
  assert.equal(KVM_CREATE_VM, 0xae01);
  assert.equal(KVM_RUN, 0xae80);
  assert.equal(kvm_userspace_memory_region.size, 32);
  assert.equal(KVM_SET_USER_MEMORY_REGION, 0x4020ae46);
});

describe('KVM_SET_USER_MEMORY_REGION', () => {
  test("Linux's errnos: misaligned, out of range, unknown flag, overlap, a changed slot, delete of nothing", () => {
    const { result } = run(`
    - mmap: { length: 8MiB, prot: [read, write], flags: [private, anonymous], as: ram }
    - open: { path: /dev/kvm, as: kvm }
    - ioctl: { fd: kvm, op: KVM_GET_API_VERSION, expect: { value: 12 } }
    - ioctl: { fd: kvm, op: KVM_CREATE_VM, as: vm, expect: { ok: true } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0, guest_phys_addr: 0x800, memory_size: 2MiB, userspace_addr: ram, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0, guest_phys_addr: 0, memory_size: 0x1800, userspace_addr: ram, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0, guest_phys_addr: 0, memory_size: 2MiB, userspace_addr: ram + 8, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0, flags: 4, guest_phys_addr: 0, memory_size: 2MiB, userspace_addr: ram, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 32764, guest_phys_addr: 0, memory_size: 2MiB, userspace_addr: ram, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0x20000, guest_phys_addr: 0, memory_size: 2MiB, userspace_addr: ram, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0, guest_phys_addr: 0x400000000000, memory_size: 2MiB, userspace_addr: ram, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, slot: 0, guest_phys_addr: 0x3fffffe00000, memory_size: 2MiB, userspace_addr: ram, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0x3fffffe00000, addr: ram, length: 0, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, addr: ram, length: 4MiB, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 1, gpa: 2MiB, addr: ram + 4MiB, length: 4MiB, expect: { errno: EEXIST } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, addr: ram, length: 2MiB, expect: { errno: EINVAL } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, addr: ram + 4MiB, length: 4MiB, expect: { errno: EINVAL } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, flags: [readonly], addr: ram, length: 4MiB, expect: { errno: EINVAL } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, flags: [log_dirty_pages], addr: ram, length: 4MiB, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 0, flags: [log_dirty_pages], addr: ram, length: 4MiB, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 5, gpa: 0, addr: ram, length: 0, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, expect: { ok: true } }
    - ioctl: { fd: vm, op: KVM_SET_USER_MEMORY_REGION, expect: { errno: EINVAL } }
    - ioctl: { fd: vm, op: KVM_CREATE_VCPU, expect: { errno: ENOTTY } }
`);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.violations, []);
    assert.match(result.steps.at(-1)!.detail ?? '', /KVM_CREATE_VCPU: not modelled/);
  });

  test('a VM belongs to the process that made it: a forked child gets EIO, a non-VM fd ENOTTY', () => {
    const { result } = run(`${VMM}    - fork: { as: child }
  child/main:
    - guest_load: { vm: vm, gpa: 4GiB, width: 4, expect: { errno: EIO } }
    - guest_load: { vm: dev, gpa: 4GiB, width: 4, expect: { errno: ENOTTY } }
`);
    assert.deepEqual(result.problems, []);
  });
});

describe('guest accesses through the second-stage table', () => {
  test('a miss installs an entry no bigger than the host leaf and congruent with the hva; a hit reads through it', () => {
    const { k, result, step } = run(`${VMM}    - guest_load: { vm: vm, gpa: 4GiB, offset: 0x100, width: 4, expect: { value: 0x1234 } }
    - load: { addr: bar2, offset: 0x100, width: 4, expect: { value: 0x1234 } }
    - guest_load: { vm: vm, gpa: 0x3000, width: 4, expect: { value: 0x5678 } }
`);
    assert.deepEqual(result.problems, []);
    // BAR2 through a host PMD: a 2 MiB EPT leaf at 4 GiB; RAM through host PTEs: a 4 KiB leaf
    const ram = vmOf(k).mm.pt.lookup(Number((step(3).result as { value: string }).value) + 0x3000)!;
    assert.deepEqual(ept(k), [[0x3000, 0, ram.pfn], [4 * GiB, 9, BAR2_PFN]]);
    assert.equal(step(7).faults?.length, 2, 'the first access faulted the host in (PUD fallback, PMD)');
    assert.equal(step(9).faults, undefined, 'a hit does not fault');
  });

  test('a gpa in no memslot exits to the VMM (KVM_EXIT_MMIO), as does a write to a read-only slot', () => {
    const { result, step } = run(`${VMM}    - guest_load: { vm: vm, gpa: 8GiB, width: 4, expect: { ok: true } }
    - kvm_set_memory_region: { vm: vm, slot: 2, flags: [readonly], gpa: 16GiB, addr: ram, length: 2MiB, expect: { ok: true } }
    - guest_store: { vm: vm, gpa: 16GiB, width: 4, value: 1, expect: { ok: true } }
    - guest_load: { vm: vm, gpa: 16GiB + 0x3000, width: 4, expect: { value: 0x5678 } }
`);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(step(9).result, { ok: true, out: { exit_reason: 'KVM_EXIT_MMIO', gpa: '0x200000000' } });
    assert.match(step(11).detail ?? '', /KVM_EXIT_MMIO at gpa 0x400000000: a write to a read-only memslot/);
  });
});

describe('every host zap runs the MMU notifier, which removes the second-stage entries of its range', () => {
  const zaps: Array<[string, string, string[]]> = [
    ['munmap of the BAR mapping', '    - munmap: { addr: bar2, length: 4MiB }\n', ['v7.1', 'series-v4', 'series-v8']],
    ['a partial munmap (the huge entry over it goes whole)', '    - munmap: { addr: bar2, offset: 4KiB, length: 4KiB }\n', ['v7.1', 'series-v8']],
    ['COMMAND.MEMORY cleared', '    - config_write: { fd: dev, reg: COMMAND, value: 0 }\n', ['v7.1', 'series-v4-fixed', 'series-v6', 'series-v8']],
    ['PM_CTRL to D3hot', '    - config_write: { fd: dev, reg: PM_CTRL, value: 3 }\n', ['v7.1', 'series-v8']],
    ['VFIO_DEVICE_RESET', '    - ioctl: { fd: dev, op: VFIO_DEVICE_RESET, expect: { ok: true } }\n', ['v7.1', 'series-v4-fixed', 'series-v8']],
    ['an FLR through DEVCTL', '    - config_write: { fd: dev, reg: DEVCTL, value: 0x8000 }\n', ['v7.1', 'series-v8']],
  ];
  for (const [what, step, kernels] of zaps)
    for (const kernel of kernels)
      test(`${what} (${kernel}): BAR2's EPT entry is gone, RAM's stays`, () => {
        const { k, result } = run(VMM + step, kernel);
        assert.deepEqual(result.problems, []);
        assert.deepEqual(result.violations, []);
        assert.deepEqual(ept(k).map(([gpa, order]) => [gpa, order]), [[0x3000, 0]]);
      });

  test('munmap, mprotect and MADV_DONTNEED of guest RAM remove its entries; close of the VM removes all and unregisters', () => {
    const { k, result } = run(`${VMM}    - mprotect: { addr: ram, length: 2MiB, prot: [read] }
`);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(ept(k).map(([gpa]) => gpa), [4 * GiB]);
    const d = run(`${VMM}    - madvise: { addr: ram, offset: 0x3000, length: 4KiB, advice: dontneed, expect: { ok: true } }
    - guest_load: { vm: vm, gpa: 0x3000, width: 4, expect: { value: 0 } }
`);
    assert.deepEqual(d.result.problems, []);
    const c = run(`${VMM}    - close: { fd: vm }
`);
    assert.equal(c.k.kvms.size, 0);
    assert.equal(c.k.procs[0].mm.notifier_subscriptions.length, 0);
  });

  test('a DMA_BUF_REVOKE of an exported buffer mapped into the guest removes its entry (series)', () => {
    const { k, result, step } = run(`
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [get], feature: DMA_BUF, region_index: 2, ranges: [{ offset: 0, length: 2MiB }], as: b, expect: { ok: true } }
    - mmap: { fd: b, offset: 0, length: 2MiB, as: m, expect: { ok: true } }
    - kvm_create_vm: { as: vm }
    - kvm_set_memory_region: { vm: vm, slot: 0, gpa: 4GiB, addr: m, length: 2MiB, expect: { ok: true } }
    - guest_store: { vm: vm, gpa: 4GiB, width: 4, value: 7, expect: { ok: true } }
    - ioctl: { fd: dev, op: VFIO_DEVICE_FEATURE, flags: [set], feature: DMA_BUF_REVOKE, dmabuf_fd: b, expect: { ok: true } }
    - guest_load: { vm: vm, gpa: 4GiB, width: 4, expect: { errno: EFAULT } }
`, 'series-v8');
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.violations, []);
    assert.deepEqual(ept(k), []);
    assert.match(step(7).detail ?? '', /exit_reason KVM_EXIT_MEMORY_FAULT at gpa 0x100000000/);
  });

  test('with no VM the zaps take no extra scheduling step (the notifier list is empty)', () => {
    const steps = (withVm: boolean) => run(`
    - open: { path: /dev/vfio/devices/gpu0, as: dev }
    - mmap: { fd: dev, offset: 0, length: 2MiB, as: m }
    - load: { addr: m, width: 4 }
${withVm ? '    - kvm_create_vm: { as: vm }\n' : ''}    - config_write: { fd: dev, reg: COMMAND, value: 0 }
`).k.sched.stepNo;
    assert.ok(steps(true) > steps(false) + 1, 'a VM on the mm adds the notifier\'s steps to the zap');
  });
});

describe('invariants over guest entries', () => {
  const setup = () => run(`${VMM}    - guest_load: { vm: vm, gpa: 4GiB, width: 4 }
`);
  test('an EPT entry the host no longer maps is no-stale-pte', () => {
    const { k } = setup();
    const pt = vmOf(k).mm.pt;
    const host = [...pt.entries()].find((e) => e.pfn === BAR2_PFN)!;
    pt.zapRange(host.va, host.va + 2 ** 21); // a host zap that bypasses the notifier
    checkInvariants(k);
    assert.ok(k.violations.some((v) => v.invariant === 'no-stale-pte' && /kvm1 EPT gpa 0x100000000 .* outlives the host's entry .*no MMU notifier removed it/.test(v.message)), JSON.stringify(k.violations));
  });
  test('an EPT entry over a disabled BAR is no-stale-pte; one that maps another pfn is pfn-in-buffer; one in no memslot too', () => {
    const { k } = setup();
    const kvm = vmOf(k);
    kvm.ept.insertPte(8 * GiB, { pfn: BAR2_PFN + 7, write: true, cache: 'UC' });
    kvm.ept.insertPte(0x5000, { pfn: 0x123, write: true, cache: 'UC' });
    k.vfio.get('gpu0')!.pdev.cfg[4] &= ~2; // COMMAND.MEMORY off behind VFIO's back, with no zap
    k.vfio.get('gpu0')!.vconfig[4] &= ~2;
    checkInvariants(k);
    const msgs = k.violations.map((v) => `${v.invariant}: ${v.message}`);
    assert.ok(msgs.some((m) => /^no-stale-pte: kvm1 EPT gpa 0x100000000 .* gpu0 BAR2 \+ 0x0 is still mapped while its memory is disabled/.test(m)), msgs.join('\n'));
    assert.ok(msgs.some((m) => /^pfn-in-buffer: kvm1 EPT gpa 0x200000000 -> pfn 0x20000007 lies in no memslot/.test(m)), msgs.join('\n'));
    assert.ok(msgs.some((m) => /^no-stale-pte: kvm1 EPT gpa 0x5000 .* -> pfn 0x123 outlives the host's entry/.test(m)), msgs.join('\n'));
  });
});

describe('the zap-range finding as a guest sees it (scenarios/vmm/guest-bar2-memory-disable.yaml)', () => {
  const outcome = (kernel: string) => {
    const scn = loadScenarioFile(GUEST);
    const { result } = runScenario(scn, { kernel });
    return { result, at: (i: number) => result.steps[i] };
  };
  for (const kernel of ['v7.1', 'series-v4-fixed', 'series-v6', 'series-v8'])
    test(`${kernel}: after COMMAND.MEMORY is cleared the guest's BAR2 access fails with EFAULT (KVM_EXIT_MEMORY_FAULT), then refaults`, () => {
      const { result, at } = outcome(kernel);
      assert.deepEqual(result.problems, []);
      assert.deepEqual(result.violations, []);
      for (const i of [14, 15]) {
        assert.deepEqual(at(i).result, { errno: 'EFAULT' });
        assert.match(at(i).detail ?? '', /exit_reason KVM_EXIT_MEMORY_FAULT at gpa 0x100000100: the host fault at hva 0x[0-9a-f]+ failed/);
        assert.equal(at(i).faults?.at(-1)?.outcome, 'SIGBUS');
      }
      assert.equal(at(18).faults?.at(-1)?.outcome, 'NOPAGE', 'decode back on: the guest refaults');
    });
  test('series-v4: the guest keeps reading BAR2 with decode off (all ones), its store is lost, nothing refaults', () => {
    const { result, at } = outcome('series-v4');
    assert.deepEqual(result.problems, []);
    assert.deepEqual(at(14).result, { ok: true, value: '0xffffffffffffffff' });
    assert.deepEqual(at(15).result, { ok: true });
    assert.equal(at(14).faults, undefined);
    assert.equal(at(18).faults, undefined);
    const found = result.violations.map((v) => `${v.invariant}: ${v.message}`);
    assert.ok(found.includes('no-stale-pte: kvm1 EPT gpa 0x100000000 (hva 0x7f5a3c400000, order 9) -> gpu0 BAR2 + 0x0 is still mapped while its memory is disabled'), found.join('\n'));
    assert.ok(found.includes('decode-enabled: guest load from gpa 0x100000100 (kvm1) reached gpu0 BAR2 + 0x100 while COMMAND.MEMORY is clear'), found.join('\n'));
  });
});

describe('a guest running across an FLR and VFIO_DEVICE_RESET (scenarios/vmm/guest-running-across-reset.yaml)', () => {
  test('v7.1: every interleaving explored, no violation (the notifier and mmu_invalidate_seq keep the EPT in step)', () => {
    const scn = loadScenarioFile(RESET);
    const r = exploreDpor(scn, { kernel: 'v7.1', states: true, atomic: true, maxExecutions: 50_000 });
    assert.equal(r.counterexample, null);
    assert.ok(r.complete && r.executions > 10);
  });
  test('series-v4: the exploration finds the guest reaching BAR2 through its surviving EPT entry while the function is in reset', () => {
    const scn = loadScenarioFile(RESET);
    const r = exploreDpor(scn, { kernel: 'series-v4', states: true, atomic: true, maxExecutions: 50_000 });
    assert.ok(r.counterexample);
    assert.equal(`${r.counterexample.invariant}: ${r.counterexample.message}`, 'decode-enabled: guest load from gpa 0x100000000 (kvm1) reached gpu0 BAR2 + 0x0 while in reset');
  });
  test('series-v4: the run shows the EPT entry surviving the firmware\'s memory toggle', () => {
    const { result } = runScenario(loadScenarioFile(RESET), { kernel: 'series-v4' });
    assert.deepEqual(result.problems, []);
    assert.ok(result.violations.some((v) => v.message === 'kvm1 EPT gpa 0x100000000 (hva 0x7f5a3c600000, order 9) -> gpu0 BAR2 + 0x0 is still mapped while its memory is disabled'), JSON.stringify(result.violations));
  });
});

test('the JSON end state lists each open VM: its memory slots and its second-stage table by gpa', async () => {
  const { finalState } = await import('../src/scenario/runner.ts');
  const scn = loadScenarioFile(RESET);
  const { run: r } = runScenario(scn, { kernel: 'series-v8' });
  assert.deepEqual(finalState(r).vms, [{
    id: 1, pid: 1,
    memslots: [
      { slot: 0, flags: 0, guest_phys_addr: '0x0', memory_size: '0x200000', userspace_addr: '0x7f5a3c400000' },
      { slot: 1, flags: 0, guest_phys_addr: '0x100000000', memory_size: '0x200000', userspace_addr: '0x7f5a3c600000' },
    ],
    ept: [{ gpa: '0x100000000', order: 9, pfn: '0x20000000', count: 1, write: true, cache: 'UC' }],
  }]);
});

test('conform refuses the KVM steps and /dev/kvm with a reason', async () => {
  const { prepare } = await import('../src/conform/conform.ts');
  const { ConformError } = await import('../src/conform/compile.ts');
  for (const step of ['kvm_create_vm: { as: vm }', 'open: { path: /dev/kvm, as: kvm }']) {
    const scn = parseScenario(`name: i\ndevices:\n  - { name: shm, profile: ivshmem }\nthreads:\n  main:\n    - ${step}\n`, 'i.yaml');
    assert.throws(() => prepare([scn], 'v7.1'), (e: Error) => e instanceof ConformError && /i\.yaml:6: .*KVM/.test(e.message));
  }
});

describe('races with a guest access, explored exhaustively', () => {
  const race = (vcpu: string, vmm: string) =>
    parseScenario(`name: r
devices:
  - { name: gpu0, profile: h100 }
setup:
  - open: { path: /dev/vfio/devices/gpu0, as: dev }
  - ioctl: { fd: dev, op: VFIO_DEVICE_GET_REGION_INFO, index: 2, as: r2 }
  - mmap: { fd: dev, offset: r2.offset, length: 2MiB, as: bar2 }
  - kvm_create_vm: { as: vm }
  - kvm_set_memory_region: { vm: vm, slot: 1, gpa: 4GiB, addr: bar2, length: 2MiB, expect: { ok: true } }
threads:
  vcpu:
    - ${vcpu}
  vmm:
    - ${vmm}
`, 'race.yaml');
  const cases: Array<[string, string, string, string]> = [
    ['a first guest access against COMMAND.MEMORY cleared', 'guest_load: { vm: vm, gpa: 4GiB, width: 4 }', 'config_write: { fd: dev, reg: COMMAND, value: 0 }', 'v7.1'],
    ['a first guest access against COMMAND.MEMORY cleared', 'guest_load: { vm: vm, gpa: 4GiB, width: 4 }', 'config_write: { fd: dev, reg: COMMAND, value: 0 }', 'series-v8'],
    ['a first guest access against munmap of the slot\'s mapping', 'guest_store: { vm: vm, gpa: 4GiB, width: 4, value: 1 }', 'munmap: { addr: bar2, length: 2MiB }', 'series-v8'],
    ['a first guest access against the deletion of its memory slot', 'guest_load: { vm: vm, gpa: 4GiB, width: 4 }', 'kvm_set_memory_region: { vm: vm, slot: 1, gpa: 4GiB, addr: bar2, length: 0, expect: { ok: true } }', 'v7.1'],
  ];
  for (const [what, vcpu, vmm, kernel] of cases)
    test(`${what} (${kernel}): no interleaving leaves a guest entry behind`, () => {
      const r = exploreDpor(race(vcpu, vmm), { kernel, states: true, atomic: true, maxExecutions: 50_000 });
      assert.equal(r.counterexample, null, r.counterexample?.message);
      assert.ok(r.complete && r.executions > 1);
    });
});
