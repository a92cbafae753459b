// drivers/vfio/pci/vfio_pci_config.c, reduced to the registers that matter for BAR access: the
// virtual COMMAND register (memory decode), BAR sizing, PM_CTRL power state and the PCIe FLR bit.
// Every change of the memory-enable state happens under memory_lock(write) and revokes first.
import type { Kernel } from '../../kernel.ts';
import { ev, type KGen } from '../../sched/sched.ts';
import type { VfioPciCoreDevice } from './core.ts';
import { CAP_EXP, CAP_PM } from '../../pci/device.ts';
import { E } from '../../../uapi/errno.ts';
import * as R from '../../../uapi/pci_regs.ts';

const rd = (a: Uint8Array, off: number, w: number) => {
  let v = 0;
  for (let i = w - 1; i >= 0; i--) v = v * 256 + a[off + i];
  return v;
};
const wr = (a: Uint8Array, off: number, w: number, v: number) => {
  for (let i = 0; i < w; i++) a[off + i] = Math.floor(v / 256 ** i) % 256;
};

/**
 * vfio_pci_config_rw: accesses are split into naturally aligned pieces of at most 4 bytes; past
 * the end of config space the access faults (-EFAULT, as observed on 6.12).
 */
export function* vfio_pci_config_rw(k: Kernel, vdev: VfioPciCoreDevice, buf: Uint8Array, pos: number, write: boolean): KGen<number> {
  const size = vdev.pdev.cfgSize;
  if (pos >= size) return -E.EFAULT;
  const count = Math.min(buf.length, size - pos);
  let done = 0;
  while (done < count) {
    const off = pos + done;
    let w = 4;
    while (w > 1 && (off % w !== 0 || done + w > count)) w /= 2;
    if (write) yield* configWrite(k, vdev, off, w, rd(buf, done, w));
    else wr(buf, done, w, yield* configRead(vdev, off, w));
    done += w;
  }
  return done;
}

function* configRead(vdev: VfioPciCoreDevice, off: number, w: number): KGen<number> {
  // the PM_CTRL power-state bits are the device's own (a reset moves it to D0 behind vconfig)
  const pm = vdev.pdev.capOffset(R.PCI_CAP_ID_PM);
  const at = pm + R.PCI_PM_CTRL - off;
  yield ev('vconfig_read', pm && at >= 0 && at < w ? vdev.pdev.decodeKey : '', 'r', undefined, [vdev.vconfigSpan(off, w, 'r')]);
  const bytes = vdev.vconfig.slice(off, off + w);
  if (pm && at >= 0 && at < w) bytes[at] = (bytes[at] & ~R.PCI_PM_CTRL_STATE_MASK) | vdev.pdev.power;
  return rd(bytes, 0, w);
}

/** Which emulated register a byte belongs to. */
function regAt(vdev: VfioPciCoreDevice, off: number): { reg: string; base: number; width: number } | null {
  if (off >= R.PCI_COMMAND && off < R.PCI_COMMAND + 2) return { reg: 'COMMAND', base: R.PCI_COMMAND, width: 2 };
  if (off >= R.PCI_BASE_ADDRESS_0 && off < R.PCI_BASE_ADDRESS_0 + 24) {
    const base = off - (off % 4);
    return { reg: 'BAR', base, width: 4 };
  }
  const pm = vdev.pdev.capOffset(R.PCI_CAP_ID_PM);
  if (pm && off >= pm + R.PCI_PM_CTRL && off < pm + R.PCI_PM_CTRL + 2) return { reg: 'PM_CTRL', base: pm + R.PCI_PM_CTRL, width: 2 };
  const exp = vdev.pdev.capOffset(R.PCI_CAP_ID_EXP);
  if (exp && off >= exp + R.PCI_EXP_DEVCTL && off < exp + R.PCI_EXP_DEVCTL + 2) return { reg: 'DEVCTL', base: exp + R.PCI_EXP_DEVCTL, width: 2 };
  return null;
}

function* configWrite(k: Kernel, vdev: VfioPciCoreDevice, off: number, w: number, value: number): KGen {
  // Merge the written bytes into each register they touch; bytes of no emulated register are
  // read-only to the user and dropped.
  const seen = new Set<number>();
  for (let i = 0; i < w; i++) {
    const r = regAt(vdev, off + i);
    if (!r || seen.has(r.base)) continue;
    seen.add(r.base);
    const next = vdev.vconfig.slice(r.base, r.base + r.width);
    for (let j = 0; j < w; j++) {
      const b = off + j - r.base;
      if (b >= 0 && b < r.width) next[b] = Math.floor(value / 256 ** j) % 256;
    }
    const v = rd(next, 0, r.width);
    if (r.reg === 'COMMAND') yield* writeCommand(k, vdev, v);
    else if (r.reg === 'BAR') yield* writeBar(vdev, r.base, v);
    else if (r.reg === 'PM_CTRL') yield* writePmCtrl(k, vdev, v);
    else if (r.reg === 'DEVCTL') yield* writeDevctl(k, vdev, r.base, v);
  }
}

/**
 * vfio_basic_config_write for PCI_COMMAND: a write that clears MEMORY revokes (zap + DMABUF move)
 * under memory_lock(write), even if memory was already off; one that sets it takes the lock plainly
 * and un-revokes afterwards. Enabling never zaps.
 */
function* writeCommand(k: Kernel, vdev: VfioPciCoreDevice, v: number): KGen {
  const newMem = !!(v & R.PCI_COMMAND_MEMORY);
  if (!newMem && !k.mut('no-revoke-on-disable')) yield* vdev.lock_revoke_bars();
  else yield* vdev.memory_lock.down_write();
  const hwBits = R.PCI_COMMAND_IO | R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER;
  const hw = vdev.pdev.command();
  yield* vdev.pdev.hwConfigWrite(R.PCI_COMMAND, 2, (hw & ~hwBits) | (v & hwBits));
  yield ev('vconfig_write', '', 'w', undefined, [vdev.vconfigSpan(R.PCI_COMMAND, 2, 'w')]);
  wr(vdev.vconfig, R.PCI_COMMAND, 2, v);
  k.note(`${vdev.name}: COMMAND <- 0x${v.toString(16)} (memory ${newMem ? 'on' : 'off'})`);
  yield* vdev.unrevokeIfEnabled();
  yield* vdev.memory_lock.up_write();
}

/** BAR writes only change the virtual register (sizing emulation); the real BAR never moves. */
function* writeBar(vdev: VfioPciCoreDevice, base: number, v: number): KGen {
  const slot = (base - R.PCI_BASE_ADDRESS_0) / 4;
  const bar = vdev.pdev.bar(slot);
  const upperOf = vdev.pdev.bars.find((b) => b.bits === 64 && b.index + 1 === slot);
  let nv = 0;
  if (bar) {
    const lowFlags = vdev.pdev.hwConfigRead(base, 4) & (bar.io ? 0x3 : 0xf);
    const mask = bar.size >= 2 ** 32 ? 0 : (2 ** 32 - bar.size) >>> 0;
    nv = ((v & mask) | lowFlags) >>> 0;
  } else if (upperOf) {
    const mask = upperOf.size > 2 ** 32 ? (2 ** 32 - upperOf.size / 2 ** 32) >>> 0 : 0xffffffff;
    nv = (v & mask) >>> 0;
  }
  yield ev('vconfig_write', '', 'w', undefined, [vdev.vconfigSpan(base, 4, 'w')]);
  wr(vdev.vconfig, base, 4, nv);
}

/**
 * vfio_pm_config_write → vfio_lock_and_set_power_state, for every write of the state field, the
 * current state included: D3hot and deeper revoke first; afterwards, un-revoke if memory is enabled
 * (which, after LOW_POWER_ENTRY, un-revokes the buffers of a function that never left D0).
 */
function* writePmCtrl(k: Kernel, vdev: VfioPciCoreDevice, v: number): KGen {
  const state = v & R.PCI_PM_CTRL_STATE_MASK;
  if (state >= R.PCI_D3hot) yield* vdev.lock_revoke_bars();
  else yield* vdev.memory_lock.down_write();
  // vfio_pm_config_write ignores what pci_set_power_state returns: a D1 or D2 the function does
  // not support leaves it where it was, and PM_CTRL reads that state back
  const r = yield* vdev.pdev.setPower(state);
  const pm = vdev.pdev.capOffset(R.PCI_CAP_ID_PM) || CAP_PM;
  yield ev('vconfig_write', '', 'w', undefined, [vdev.vconfigSpan(pm + R.PCI_PM_CTRL, 2, 'w')]);
  vdev.vconfig[pm + R.PCI_PM_CTRL] = (vdev.vconfig[pm + R.PCI_PM_CTRL] & ~R.PCI_PM_CTRL_STATE_MASK) | vdev.pdev.power;
  k.note(r < 0 ? `${vdev.name}: D${state} refused (not in PMC): stays D${vdev.pdev.power === 3 ? '3hot' : vdev.pdev.power}` : `${vdev.name}: power -> D${state === 3 ? '3hot' : state}`);
  yield* vdev.unrevokeIfEnabled();
  yield* vdev.memory_lock.up_write();
}

/** vfio_exp_config_write: the FLR bit (when the device has FLR) revokes, resets, un-revokes. */
function* writeDevctl(k: Kernel, vdev: VfioPciCoreDevice, base: number, v: number): KGen {
  yield ev('vconfig_write', '', 'w', undefined, [vdev.vconfigSpan(base, 2, 'w')]);
  wr(vdev.vconfig, base, 2, v & ~R.PCI_EXP_DEVCTL_BCR_FLR); // the FLR bit always reads 0
  if (!(v & R.PCI_EXP_DEVCTL_BCR_FLR) || !vdev.pdev.desc.capabilities.flr) return;
  if (k.mut('M16')) yield* vdev.memory_lock.down_write();
  else yield* vdev.lock_revoke_bars();
  yield* vdev.pdev.tryResetFunction('FLR'); // what pci_try_reset_function returns is ignored
  yield* vdev.unrevokeIfEnabled();
  yield* vdev.memory_lock.up_write();
}

export { CAP_EXP };
