// Compile a scenario for the guest executor (src/conform/guest/exec.c): one line per step, in the
// order the model's sequential run (`vfio-sim run`) executed them, with every number resolved
// except the names bound by `as:`, which the executor binds to what the real kernel returned
// (fds, mmap addresses, ioctl fields). ioctl structs are built by the model's own encoder
// (buildIoctl), so both kernels get the same bytes.
import { MAIN_PROC, type Scenario, type Step } from '../scenario/loader.ts';
import { SETUP, stepAt } from '../scenario/runner.ts';
import { buildIoctl, containerIoctlArgs, isContainerStep, le, MADVICE, mmapFlags, mmapProt, mremapFlags, openFlags, regOffset } from '../scenario/ops.ts';
import { literal, parseExpr, refsOf } from '../scenario/values.ts';
import type { PciDevDesc } from '../kernel/pci/device.ts';
import { fieldSize, type Layout } from '../uapi/struct.ts';
import { argValue, VALUE_ARG_IOCTLS } from '../uapi/vfio.ts';
import * as M from '../uapi/mman.ts';
import type { Slot } from './twins.ts';

export class ConformError extends Error {}

const DEVICE_PATH = '/dev/vfio/devices/';
const GROUP_PATH = /^\/dev\/vfio\/(0|[1-9]\d*)$/;
/** What a struct field naming a run-time value holds until the executor patches it (one per field). */
const PLACEHOLDER = 0x5eed_0000;

/** A number written in the scenario, or null when it names a run-time value. */
function literalOf(v: unknown): bigint | null {
  try {
    return literal(v, '');
  } catch {
    return null;
  }
}

/** Where a placeholder can sit: each field of the struct, or the whole 4-byte int of an ioctl without one (SET_CONTAINER). */
function placeholderFields(bytes: Uint8Array, layout: Layout | null): Array<[number, number]> {
  if (layout) return layout.fields.map((f) => [f.offset, fieldSize(f)] as [number, number]).filter(([o, n]) => o + n <= bytes.length && n >= 4);
  return bytes.length === 4 ? [[0, 4]] : [];
}

export interface Compiled {
  /** the program section for this scenario */
  text: string;
  /** step keys ("thread[index]") in program order */
  order: string[];
}

/**
 * `order`: the (thread, index) of every step in the order the model ran them; `slots`: the guest
 * device backing each scenario device, in the scenario's order.
 */
export function compileScenario(scn: Scenario, order: Array<{ thread: string; index: number }>, slots: Slot[]): Compiled {
  const where = (s: Step, msg: string) => new ConformError(`${scn.file}:${s.line}: ${s.op}: ${msg}`);
  // every `as:` name gets a number, in the order the scenario binds them
  const ids = new Map<string, number>();
  for (const s of [...scn.setup, ...scn.threads.flatMap((t) => t.steps)]) if (s.as && !ids.has(s.as)) ids.set(s.as, ids.size);

  /** "+0x1000+$2.offset-$3": literals resolved, names left for the executor */
  const expr = (s: Step, v: unknown): string =>
    parseExpr(v)
      .map((t) => {
        const sign = t.sign < 0n ? '-' : '+';
        if (t.lit !== undefined) return `${sign}0x${BigInt.asUintN(64, t.lit).toString(16)}`;
        const id = ids.get(t.ref!);
        if (id === undefined) throw where(s, `"${t.ref}" is not bound by any step`);
        return `${sign}$${id}${t.field ? `.${t.field}` : ''}`;
      })
      .join('');
  /** a literal only: what the model resolves with no run-time names */
  const literalOnly = (s: Step) => (v: unknown): bigint => {
    try {
      return literal(v, '');
    } catch {
      throw where(s, `the executor builds ioctl structs before the run, so their fields must be numbers (not "${String(v)}")`);
    }
  };
  const plus = (s: Step, a: unknown, b: unknown) => (b === undefined ? expr(s, a) : `${expr(s, a)}${expr(s, b)}`);

  const procs = [MAIN_PROC, ...new Set(scn.threads.map((t) => t.proc))].filter((p, i, all) => all.indexOf(p) === i);
  const forked = new Set([...scn.setup, ...scn.threads.flatMap((t) => t.steps)].filter((s) => s.op === 'fork').map((s) => s.as!));
  const setupProc = scn.threads[0].proc;
  const threadOf = (name: string) => scn.threads.find((t) => t.name === name);

  const lines: string[] = [`scenario ${scn.name}`];
  for (const p of procs) lines.push(`proc ${p} ${forked.has(p) ? 'forked' : 'start'}`);
  scn.devices.forEach((d, i) => {
    const slot = slots[i];
    const bars = Object.entries(slot.twin.bars).map(([idx, size]) => `${idx}:0x${size.toString(16)}`).join(',');
    lines.push(`device ${d.name} ${slot.bdf} ${slot.twin.vendor.toString(16)} ${slot.twin.device.toString(16)} ${bars}`);
  });
  lines.push('start');

  // which device each fd name refers to (open of a device path, dup, a group's GET_DEVICE_FD of its
  // device), for named config registers; and which device's group each group fd name opened
  // (/dev/vfio/N is the group of the scenario's device N: group.ts)
  const devOf = new Map<string, PciDevDesc>();
  const groupOf = new Map<string, number>();
  const groupIndex = (path: string) => (GROUP_PATH.test(path) ? Number(path.slice('/dev/vfio/'.length)) : -1);
  for (const s of [...scn.setup, ...scn.threads.flatMap((t) => t.steps)]) {
    if (!s.as) continue;
    const path = String(s.args.path ?? '');
    if (s.op === 'open' && groupIndex(path) >= 0) groupOf.set(s.as, groupIndex(path));
    const gfd = s.op === 'ioctl' && s.args.op === 'VFIO_GROUP_GET_DEVICE_FD' ? groupOf.get(refsOf(parseExpr(s.args.fd))[0] ?? '') : undefined;
    const dev = s.op === 'open' && path.startsWith(DEVICE_PATH) ? scn.devices.find((d) => d.name === path.slice(DEVICE_PATH.length))
      : s.op === 'dup' ? devOf.get(refsOf(parseExpr(s.args.fd))[0] ?? '')
        : gfd !== undefined && scn.devices[gfd]?.bdf === s.args.name ? scn.devices[gfd] : undefined;
    if (dev) devOf.set(s.as, dev);
  }

  const keys: string[] = [];
  for (const { thread, index } of order) {
    const s0 = stepAt(scn, thread, index);
    if (!s0) throw new ConformError(`${scn.file}: no step ${thread}[${index}]`);
    // container_map / container_unmap are the raw ioctls they stand for
    const s: Step = isContainerStep(s0.op) ? { ...s0, op: 'ioctl', args: containerIoctlArgs(s0.op, s0.args) } : s0;
    const proc = thread === SETUP ? setupProc : threadOf(thread)!.proc;
    const a = s.args;
    const kv: string[] = [];
    let op: string = s.op;
    switch (s.op) {
      case 'open': {
        const path = String(a.path);
        const dev = path.startsWith(DEVICE_PATH) ? scn.devices.find((d) => d.name === path.slice(DEVICE_PATH.length)) : undefined;
        const gi = groupIndex(path);
        if (gi >= 0) {
          // the group of the scenario's device N is the guest's group of the device that stands for it
          if (!scn.devices[gi]) throw where(s, `${path}: the scenario has no device ${gi} (group N is the group of the scenario's device N, from 0)`);
          kv.push(`group=${scn.devices[gi].name}`, `flags=0x${openFlags(a.flags, literalOnly(s), M.O_RDWR).toString(16)}`);
        } else if (dev) {
          // GROUP_GET_DEVICE_FD always returns an O_RDWR fd: the access mode cannot be reproduced
          if (((openFlags(a.flags, literalOnly(s), M.O_RDWR) & M.O_ACCMODE) !== M.O_RDWR)) throw where(s, 'the executor opens devices through the group API, whose fds are always O_RDWR: open flags [rdonly] or [wronly] cannot be reproduced');
          kv.push(`dev=${dev.name}`);
        }
        else {
          if (/\s/.test(path)) throw where(s, 'a path with white space');
          // the reference kernel (Debian's 6.12) is built without CONFIG_IOMMUFD: no device cdev, no /dev/iommu
          if (path === '/dev/iommu' || /^\/dev\/vfio\/devices\/vfio\d+$/.test(path)) throw where(s, `the executor has no ${path}: it needs the device cdev and iommufd`);
          // the conformance guest runs under TCG, with no KVM of its own
          if (path === '/dev/kvm') throw where(s, 'the executor has no /dev/kvm: it needs KVM (nested virtualization) in the conformance guest');
          kv.push(`path=${path}`, `flags=0x${openFlags(a.flags, literalOnly(s), M.O_RDWR).toString(16)}`);
        }
        break;
      }
      case 'close':
      case 'dup':
        kv.push(`fd=${expr(s, a.fd)}`);
        break;
      case 'ioctl': {
        // struct fields that name run-time values (MAP_DMA's vaddr, SET_CONTAINER's fd) are built as
        // placeholders, which the executor replaces with the values (patch=OFFSET:SIZE:EXPR)
        const later: string[] = [];
        const resolve = (v: unknown): bigint => {
          const lit = literalOf(v);
          if (lit !== null) return lit;
          later.push(expr(s, v));
          return BigInt(PLACEHOLDER + later.length - 1);
        };
        const { cmd, arg, layout, name } = buildIoctl(a, resolve);
        kv.push(`fd=${expr(s, a.fd)}`, `cmd=0x${cmd.toString(16)}`);
        if (VALUE_ARG_IOCTLS.has(cmd)) {
          // the argument is the number itself, not a pointer
          const v = argValue(arg);
          kv.push(`val=${v >= BigInt(PLACEHOLDER) && v < BigInt(PLACEHOLDER + later.length) ? later[Number(v) - PLACEHOLDER] : `+0x${v.toString(16)}`}`);
          break;
        }
        let bytes = arg;
        if (name === 'VFIO_GROUP_GET_DEVICE_FD') {
          // the device's name is the guest's PCI address of the device that stands for it
          const gi = groupOf.get(refsOf(parseExpr(a.fd))[0] ?? '');
          const dev = gi !== undefined ? scn.devices[gi] : undefined;
          if (dev && dev.bdf === a.name) {
            bytes = new TextEncoder().encode(`${slots[gi!].bdf}\0`);
            kv.push(`devfd=${dev.name}`);
          }
        }
        if (bytes.length) kv.push(`arg=${Buffer.from(bytes).toString('hex')}`);
        const patched = new Set<number>();
        for (const [off, size] of placeholderFields(bytes, layout)) {
          const v = Number(le(bytes.subarray(off, off + size), size)) - PLACEHOLDER;
          if (v >= 0 && v < later.length && !patched.has(v)) {
            kv.push(`patch=${off}:${size}:${later[v]}`);
            patched.add(v);
          }
        }
        if (patched.size < later.length) throw where(s, `the executor builds this ioctl's struct before the run and can fill in a bound name only in a field of its struct (not "${later.find((_, i) => !patched.has(i))}")`);
        if (layout) kv.push(`fields=${layout.fields.map((f) => `${f.name}:${f.offset}:${fieldSize(f)}`).join(',')}`);
        break;
      }
      case 'mmap':
        kv.push(`addr=${a.addr !== undefined ? expr(s, a.addr) : '+0x0'}`, `length=${expr(s, a.length)}`, `prot=0x${mmapProt(a).toString(16)}`,
          `flags=0x${mmapFlags(a).toString(16)}`, `fd=${a.fd !== undefined ? expr(s, a.fd) : '-0x1'}`, `offset=${expr(s, a.offset ?? 0)}`);
        break;
      case 'munmap':
        kv.push(`addr=${plus(s, a.addr, a.offset)}`, `length=${expr(s, a.length)}`);
        break;
      case 'mprotect':
        kv.push(`addr=${plus(s, a.addr, a.offset)}`, `length=${expr(s, a.length)}`, `prot=0x${mmapProt(a).toString(16)}`);
        break;
      case 'madvise':
        kv.push(`addr=${plus(s, a.addr, a.offset)}`, `length=${expr(s, a.length)}`, `advice=${MADVICE[a.advice as string]}`);
        break;
      case 'mremap':
        kv.push(`addr=${plus(s, a.addr, a.offset)}`, `old_length=${expr(s, a.old_length)}`, `new_length=${expr(s, a.new_length)}`, `flags=0x${mremapFlags(a).toString(16)}`);
        break;
      case 'load':
      case 'store':
        kv.push(`addr=${plus(s, a.addr, a.offset)}`, `width=${Number(a.width ?? 4)}`);
        if (s.op === 'store') kv.push(`value=${expr(s, a.value)}`);
        break;
      case 'config_read':
      case 'config_write': {
        const dev = a.device !== undefined ? scn.devices.find((d) => d.name === a.device) : devOf.get(refsOf(parseExpr(a.fd))[0] ?? '');
        const { off, width: w0 } = regOffset(a.reg, literalOnly(s), dev);
        const width = a.width !== undefined ? Number(literalOnly(s)(a.width)) : w0;
        if (a.device !== undefined) {
          op = s.op === 'config_read' ? 'hwconfig_read' : 'hwconfig_write';
          kv.push(`dev=${a.device}`);
        } else kv.push(`fd=${expr(s, a.fd)}`);
        kv.push(`off=0x${off.toString(16)}`, `width=${width}`);
        if (s.op === 'config_write') kv.push(`value=${expr(s, a.value)}`);
        break;
      }
      case 'read':
        kv.push(`fd=${expr(s, a.fd)}`, `offset=${expr(s, a.offset)}`, `length=${expr(s, a.length)}`);
        if (a.buf !== undefined) kv.push(`buf=${expr(s, a.buf)}`);
        break;
      case 'write':
        kv.push(`fd=${expr(s, a.fd)}`, `offset=${expr(s, a.offset)}`, `width=${a.width !== undefined ? Number(literalOnly(s)(a.width)) : 4}`, `value=${expr(s, a.value)}`);
        break;
      case 'fork':
        kv.push(`as=${a.as}`);
        break;
      case 'exit':
        break;
      case 'post':
      case 'wait':
        kv.push(`event=${a.event}`);
        break;
      default:
        throw where(s, `the executor has no ${s.op}: it needs ${s.op.startsWith('iommufd') || s.op.startsWith('dma') || s.op === 'ioas_alloc' ? 'iommufd' : s.op.startsWith('kvm') || s.op.startsWith('guest') ? 'KVM (nested virtualization) in the conformance guest' : 'a model-only facility'}`);
    }
    const bind = s.as !== undefined ? ids.get(s.as)! : -1;
    lines.push(`step ${proc} ${thread} ${index} ${op} ${bind} ${kv.join(' ')}`.trimEnd());
    keys.push(`${thread}[${index}]`);
  }
  lines.push('end');
  return { text: `${lines.join('\n')}\n`, order: keys };
}
