// A scenario step as a trace line reads it without the YAML beside it: the call and its key
// arguments in the scenario's own terms (names bound with `as:`, register and feature names,
// sizes), e.g. `ioctl dev VFIO_DEVICE_FEATURE GET DMA_BUF region 2 [0x800+4KiB] as buf`,
// `config_write dev COMMAND = 0x0`, `load m+0x1000 u32`. Built from the step alone, once.
import { parseExpr } from './values.ts';
import type { Step } from './loader.ts';

/** A number as a reviewer writes it: sizes with a unit, addresses and offsets in hex. */
function lit(v: bigint): string {
  const a = v < 0n ? -v : v;
  const sign = v < 0n ? '-' : '';
  for (const [u, n] of [['GiB', 30n], ['MiB', 20n], ['KiB', 10n]] as const) if (a >= 1n << 12n && a % (1n << n) === 0n) return `${sign}${a >> n}${u}`;
  return a < 10n ? `${v}` : `${sign}0x${a.toString(16)}`;
}

/** An argument: a number, a name bound with as:, a field, a sum; anything else as written. */
export function expr(v: unknown): string {
  try {
    return parseExpr(v)
      .map((t, i) => `${t.sign < 0n ? '-' : i ? '+' : ''}${t.ref !== undefined ? `${t.ref}${t.field ? `.${t.field}` : ''}` : lit(t.lit!)}`)
      .join('');
  } catch {
    return String(v);
  }
}

/** An expression that is itself a sum, in parentheses, so that `offset+length` stays readable. */
const paren = (v: unknown) => (/[+-]/.test(expr(v).slice(1)) ? `(${expr(v)})` : expr(v));
const list = (v: unknown) => (Array.isArray(v) ? v.join('|') : expr(v));
const WIDTH: Record<string, string> = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' };
const addr = (a: Record<string, unknown>) => `${expr(a.addr)}${a.offset !== undefined ? `+${expr(a.offset)}` : ''}`.replace('+-', '-');

/** The arguments every op may carry that say nothing about the call itself. */
const NOT_ARGS = new Set(['as', 'expect']);

function ioctl(a: Record<string, unknown>): string {
  const parts = [expr(a.fd), typeof a.op === 'string' ? a.op : expr(a.op)];
  if (a.flags !== undefined) parts.push(Array.isArray(a.flags) ? (a.flags as string[]).map((f) => f.toUpperCase()).join('|') : `flags ${expr(a.flags)}`);
  if (a.feature !== undefined) parts.push(typeof a.feature === 'string' ? a.feature : `feature ${expr(a.feature)}`);
  if (a.index !== undefined) parts.push(`index ${expr(a.index)}`);
  if (a.region_index !== undefined) parts.push(`region ${expr(a.region_index)}`);
  if (a.ranges !== undefined) parts.push(`[${(a.ranges as Array<{ offset: unknown; length: unknown }>).map((r) => `${paren(r.offset)}+${paren(r.length)}`).join(', ')}]`);
  if (a.nr_ranges !== undefined) parts.push(`nr_ranges ${expr(a.nr_ranges)}`);
  if (a.dmabuf_fd !== undefined) parts.push(`dmabuf_fd ${expr(a.dmabuf_fd)}`);
  if (a.memattr !== undefined) parts.push(typeof a.memattr === 'string' ? a.memattr : `memattr ${expr(a.memattr)}`);
  if (a.arg !== undefined) parts.push(typeof a.arg === 'string' && /^[A-Za-z_]/.test(a.arg) ? a.arg : expr(a.arg));
  if (a.name !== undefined) parts.push(`"${String(a.name)}"`);
  for (const k of ['open_flags', 'dma_buf_flags', 'hot_reset_flags', 'iommufd', 'pt_id', 'pasid', 'id', 'ioas_id', 'user_va', 'container', 'vaddr', 'start', 'count', 'length', 'iova', 'wakeup_eventfd', '__reserved', 'argsz', 'size'])
    if (a[k] !== undefined) parts.push(`${k} ${list(a[k])}`);
  if (a.data !== undefined) parts.push(`data [${(a.data as unknown[]).map(expr).join(', ')}]`);
  return parts.join(' ');
}

/** The call a step makes, in words (without the op name's repetition where the op is the call). */
export function callText(s: Step): string {
  const a = s.args;
  const as = s.as ? ` as ${s.as}` : '';
  const w = (x: unknown, dflt: number) => WIDTH[String(x ?? dflt)] ?? `width ${expr(x)}`;
  const target = () => (a.device !== undefined ? `device ${a.device}` : expr(a.fd));
  switch (s.op) {
    case 'ioctl':
      return `ioctl ${ioctl(a)}${as}`;
    case 'load':
      return `load ${addr(a)} ${w(a.width, 4)}${as}`;
    case 'store':
      return `store ${addr(a)} ${w(a.width, 4)} = ${expr(a.value)}`;
    case 'config_read':
      return `config_read ${target()} ${typeof a.reg === 'string' && !/^\d/.test(a.reg) ? a.reg : `@${expr(a.reg)}`}${a.width !== undefined ? ` ${w(a.width, 4)}` : ''}${as}`;
    case 'config_write':
      return `config_write ${target()} ${typeof a.reg === 'string' && !/^\d/.test(a.reg) ? a.reg : `@${expr(a.reg)}`}${a.width !== undefined ? ` ${w(a.width, 4)}` : ''} = ${expr(a.value)}`;
    case 'mmap':
      return `mmap ${a.fd !== undefined ? expr(a.fd) : 'anonymous'}${a.offset !== undefined ? ` offset ${expr(a.offset)}` : ''} length ${expr(a.length)}${a.prot ? ` ${list(a.prot)}` : ''}${a.flags ? ` ${list(a.flags)}` : ''}${a.addr !== undefined ? ` at ${expr(a.addr)}` : ''}${as}`;
    case 'open':
      return `open ${a.path !== undefined ? String(a.path) : a.proc_fd !== undefined ? `/proc/self/fd/${expr(a.proc_fd)}` : Object.entries(a).filter(([k]) => !NOT_ARGS.has(k)).map(([k, v]) => `${k} ${list(v)}`).join(' ')}${a.flags ? ` ${list(a.flags)}` : ''}${as}`;
    case 'read':
      return `read ${expr(a.fd)} offset ${expr(a.offset)} length ${expr(a.length)}${a.buf !== undefined ? ` into ${expr(a.buf)}` : ''}${as}`;
    case 'write':
      return `write ${expr(a.fd)} offset ${expr(a.offset)} ${w(a.width, 4)} = ${expr(a.value)}`;
  }
  const rest = Object.entries(a)
    .filter(([k]) => !NOT_ARGS.has(k))
    .map(([k, v]) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? `${k} ${JSON.stringify(v)}` : `${k} ${typeof v === 'string' && !/^[\d]/.test(v) && /^[A-Za-z_]/.test(v) ? v : list(v)}`));
  return [s.op, ...rest].join(' ') + as;
}
