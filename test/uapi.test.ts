// Checks the uAPI tables in src/uapi/ against the machine's real C headers: a generated C program is
// compiled with gcc against <linux/vfio.h>, <linux/pci_regs.h>, <sys/mman.h>, <linux/mman.h>,
// <errno.h>, ... and prints every constant, struct size and field offset/size/signedness the
// headers define; each one must equal what src/uapi says.
//
// The items are taken from the project's tables programmatically (every number exported by a
// src/uapi module, every key of IOCTLS, FEATURES and ERRNO, every field of every cstruct layout),
// so a new entry is checked without touching this file.
//
// The installed headers may be older than the model's uAPI (Debian 12 ships Linux 6.1, which has no
// VFIO_DEVICE_FEATURE_DMA_BUF, no DMA_BUF structs, no vfio_device_info.pad, ...). Presence is decided
// per item by a compile probe (one tiny function per item, compiled with -fsyntax-only; an item
// whose line does not compile is absent). A probe, unlike `#ifdef`, also works for enum constants
// (VFIO_PCI_*_INDEX, the DMA_BUF memattr enum), for structs, and for a field added to an existing
// struct (vfio_device_info.pad has no macro of its own). Absent items are reported with
// t.diagnostic; a present item with a different value fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as vfio from '../src/uapi/vfio.ts';
import * as ioctl from '../src/uapi/ioctl.ts';
import * as mman from '../src/uapi/mman.ts';
import * as pciRegs from '../src/uapi/pci_regs.ts';
import * as errno from '../src/uapi/errno.ts';
import { cstruct, type FieldType, type Layout } from '../src/uapi/struct.ts';

// ---------------------------------------------------------------------------------------------
// What the tables hold

type Source = 'vfio.ts' | 'ioctl.ts' | 'mman.ts' | 'pci_regs.ts' | 'errno.ts';

/** A C integer constant expression and the value src/uapi gives it. */
interface ConstItem { kind: 'const'; source: Source; group: string; label: string; expr: string; expected: number }
interface StructItem { kind: 'struct'; source: Source; group: string; label: string; layout: Layout }
interface FieldItem {
  kind: 'field'; source: Source; group: string; label: string; layout: Layout; name: string; type: FieldType; offset: number;
}
type Item = ConstItem | StructItem | FieldItem;

/**
 * Values the model needs that no uAPI header defines (kernel-internal headers, or the kernel's
 * pci_power_t). They are compared if a header does define them; otherwise they are reported apart.
 */
const KERNEL_INTERNAL = new Set([
  'VFIO_PCI_OFFSET_SHIFT', 'VFIO_PCI_OFFSET_MASK', // include/linux/vfio_pci_core.h
  'PMD_SHIFT', 'PUD_SHIFT', 'PMD_ORDER', 'PUD_ORDER', 'PMD_SIZE', 'PUD_SIZE', 'TASK_SIZE', // arch/x86 mm headers
  'PCI_D0', 'PCI_D1', 'PCI_D2', 'PCI_D3hot', 'PCI_D3cold', // include/linux/pci.h (pci_power_t)
]);
/** Exports that are not uAPI values, with the reason; any other non-number export must be handled below. */
const NOT_HEADER_VALUES: Record<string, string> = {
  'vfio.ts:IOCTL_NAME': 'reverse map of IOCTLS',
  'vfio.ts:VFIO_PCI_INDEX_TO_OFFSET': 'kernel-internal macro (vfio_pci_core.h)',
  'vfio.ts:VFIO_PCI_OFFSET_TO_INDEX': 'kernel-internal macro (vfio_pci_core.h)',
  'errno.ts:E': 'alias of ERRNO',
  'errno.ts:errnoName': 'helper',
  'errno.ts:isErrnoName': 'helper',
  'vfio.ts:VALUE_ARG_IOCTLS': 'the set of ioctls whose argument is a number (from IOCTLS)',
  'vfio.ts:VFIO_EXTENSIONS': 'the extension constants by name (each checked on its own)',
  'vfio.ts:valueArg': 'helper: a value argument as the model passes it',
  'vfio.ts:argValue': 'helper: the value of a value argument',
};
/** The structs of Linux 6.1's <linux/vfio.h> that the model uses: these must be found and compared. */
const VFIO_STRUCTS_SINCE_6_1 = ['vfio_device_info', 'vfio_region_info', 'vfio_irq_info', 'vfio_info_cap_header', 'vfio_device_feature'];

const isLayout = (v: unknown): v is Layout =>
  typeof v === 'object' && v !== null && 'fields' in v && 'size' in v && 'name' in v && Array.isArray((v as Layout).fields);

const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };
const hex = (n: number | bigint) => (n < 0 ? '-0x' + (-BigInt(n)).toString(16) : '0x' + BigInt(n).toString(16));

function collectItems(): { items: Item[]; unclassified: string[] } {
  const items: Item[] = [];
  const unclassified: string[] = [];
  const constant = (source: Source, group: string, label: string, expected: number, expr = label) =>
    items.push({ kind: 'const', source, group, label, expr, expected });

  // Standalone numbers and struct layouts exported by each module.
  const modules: Array<[Source, Record<string, unknown>]> = [
    ['vfio.ts', vfio], ['ioctl.ts', ioctl], ['mman.ts', mman], ['pci_regs.ts', pciRegs], ['errno.ts', errno],
  ];
  const tables = new Set(['vfio.ts:IOCTLS', 'vfio.ts:CONTAINER_IOCTLS', 'vfio.ts:FEATURES', 'errno.ts:ERRNO']);
  const functionsCheckedBySample = new Set(['ioctl.ts:_IOC', 'ioctl.ts:_IO', 'ioctl.ts:_IOC_NR', 'ioctl.ts:_IOC_TYPE']);
  for (const [source, ns] of modules) {
    for (const [name, value] of Object.entries(ns)) {
      const key = `${source}:${name}`;
      if (tables.has(key) || functionsCheckedBySample.has(key) || key in NOT_HEADER_VALUES) continue;
      if (typeof value === 'number') constant(source, `${source} constants`, name, value);
      else if (isLayout(value)) {
        const group = `${source} struct layouts`;
        items.push({ kind: 'struct', source, group, label: `sizeof(struct ${value.name})`, layout: value });
        for (const f of value.fields) {
          items.push({ kind: 'field', source, group, label: `${value.name}.${f.name}`, layout: value, name: f.name, type: f.type, offset: f.offset });
        }
      } else unclassified.push(`${key} (${typeof value})`);
    }
  }

  for (const [name, value] of Object.entries(vfio.IOCTLS)) constant('vfio.ts', 'vfio.ts IOCTLS', name, value);
  for (const [name, value] of Object.entries(vfio.CONTAINER_IOCTLS)) constant('vfio.ts', 'vfio.ts IOCTLS', name, value);
  for (const [name, value] of Object.entries(vfio.FEATURES)) constant('vfio.ts', 'vfio.ts FEATURES', `VFIO_DEVICE_FEATURE_${name}`, value);
  for (const [name, value] of Object.entries(errno.ERRNO)) constant('errno.ts', 'errno.ts ERRNO', name, value);

  // ioctl.ts's encoders and decoders, against <asm-generic/ioctl.h>'s macros: decoding every VFIO
  // ioctl number of our table (as a literal, so it does not depend on the header having the name),
  // and _IOC samples that set each direction bit (dir 3 sets bit 31: the result must stay unsigned).
  for (const value of Object.values(vfio.IOCTLS)) {
    constant('ioctl.ts', 'ioctl.ts encoders', `_IOC_NR(${hex(value)}U)`, ioctl._IOC_NR(value));
    constant('ioctl.ts', 'ioctl.ts encoders', `_IOC_TYPE(${hex(value)}U)`, ioctl._IOC_TYPE(value));
  }
  const dirs: Array<[string, number]> = [
    ['_IOC_NONE', ioctl._IOC_NONE], ['_IOC_WRITE', ioctl._IOC_WRITE], ['_IOC_READ', ioctl._IOC_READ],
    ['_IOC_READ|_IOC_WRITE', ioctl._IOC_READ | ioctl._IOC_WRITE],
  ];
  for (const [dirC, dir] of dirs) {
    for (const [type, nr, size] of [[0x3b, 0x75, 0x18], [0xff, 0xff, 0x3fff]] as const) {
      constant('ioctl.ts', 'ioctl.ts encoders', `_IOC(${dirC}, ${hex(type)}, ${hex(nr)}, ${hex(size)})`, ioctl._IOC(dir, type, nr, size));
    }
  }
  for (const [type, nr] of [[0x3b, 0x64], [0xff, 0xff]] as const) {
    constant('ioctl.ts', 'ioctl.ts encoders', `_IO(${hex(type)}, ${hex(nr)})`, ioctl._IO(type, nr));
  }
  return { items, unclassified };
}

// ---------------------------------------------------------------------------------------------
// The C side

const PRELUDE = `#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/user.h>
#include <linux/mman.h>
#include <linux/ioctl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <linux/version.h>
`;

function probeBody(item: Item): string {
  switch (item.kind) {
    case 'const': return `(void)(${item.expr});`;
    case 'struct': return `(void)sizeof(struct ${item.layout.name});`;
    case 'field': return `(void)__builtin_offsetof(struct ${item.layout.name}, ${item.name});`;
  }
}
function emitLine(item: Item, id: number): string {
  switch (item.kind) {
    case 'const': return `  EMIT_CONST(${id}, ${item.expr});`;
    case 'struct': return `  printf("S ${id} %zu\\n", sizeof(struct ${item.layout.name}));`;
    case 'field': return `  EMIT_FIELD(${id}, ${item.layout.name}, ${item.name});`;
  }
}

interface Run { present: boolean[]; values: Map<number, bigint[]>; kernelVersion: string }

function gcc(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('gcc', args, { encoding: 'utf8' });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT'
      ? 'gcc is not installed (or not on PATH): test/uapi.test.ts compiles a C program against <linux/vfio.h> and needs gcc and the Linux uAPI headers (linux-libc-dev).'
      : `could not run gcc: ${r.error.message}`);
  }
  return { status: r.status, stderr: r.stderr };
}

function runAgainstHeaders(items: Item[]): Run {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-sim-uapi-'));
  try {
    // 1. Which items do the headers have? One probe function per line; gcc reports each failing line.
    const prelude = PRELUDE.split('\n').length - 1;
    const probe = join(dir, 'probe.c');
    writeFileSync(probe, PRELUDE + items.map((it, i) => `void vfio_sim_probe_${i}(void) { ${probeBody(it)} }\n`).join(''));
    const p = gcc(['-std=gnu11', '-fsyntax-only', probe]);
    const present = items.map(() => true);
    const unexplained: string[] = [];
    for (const line of p.stderr.split('\n')) {
      const m = /^(.*?):(\d+):\d+: (?:fatal )?error:/.exec(line);
      if (!m) continue;
      const idx = Number(m[2]) - prelude - 1;
      if (m[1] === probe && idx >= 0 && idx < items.length) present[idx] = false;
      else unexplained.push(line);
    }
    if (unexplained.length > 0 || (p.status !== 0 && present.every(Boolean))) {
      throw new Error(`the header probe failed to compile for a reason other than a missing item:\n${p.stderr}`);
    }

    // 2. Print the present ones.
    const prog = join(dir, 'uapi.c');
    const exe = join(dir, 'uapi');
    writeFileSync(prog, `${PRELUDE}
#define EMIT_CONST(id, x) do { \\
    if ((x) < 0) printf("C %d %lld\\n", (id), (long long)(x)); \\
    else printf("C %d %llu\\n", (id), (unsigned long long)(x)); \\
  } while (0)
#define EMIT_FIELD(id, S, f) printf("F %d %zu %zu %d\\n", (id), offsetof(struct S, f), \\
    sizeof(((struct S *)0)->f), (int)((__typeof__(((struct S *)0)->f))-1 < 0))
int main(void) {
  printf("V %d\\n", LINUX_VERSION_CODE);
${items.map((it, i) => (present[i] ? emitLine(it, i) : null)).filter((l) => l !== null).join('\n')}
  return 0;
}
`);
    const c = gcc(['-std=gnu11', '-O0', '-o', exe, prog]);
    if (c.status !== 0) throw new Error(`gcc could not compile the generated program ${prog}:\n${c.stderr}`);
    const r = spawnSync(exe, [], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the generated program exited with ${r.status}: ${r.stderr}`);

    const values = new Map<number, bigint[]>();
    let kernelVersion = 'unknown';
    for (const line of r.stdout.trim().split('\n')) {
      const [tag, ...rest] = line.split(' ');
      if (tag === 'V') {
        const v = Number(rest[0]);
        kernelVersion = `${v >> 16}.${(v >> 8) & 0xff}.${v & 0xff}`;
      } else values.set(Number(rest[0]), rest.slice(1).map((x) => BigInt(x)));
    }
    return { present, values, kernelVersion };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The comparison

test('src/uapi matches the installed C headers (<linux/vfio.h>, <linux/pci_regs.h>, mman, errno, ioctl)', async (t) => {
  const { items, unclassified } = collectItems();
  const run = runAgainstHeaders(items);
  const has = (i: number) => run.present[i]!;
  const indexOf = new Map(items.map((it, i) => [it, i]));
  const idx = (it: Item) => indexOf.get(it)!;

  await t.test('every src/uapi export is checked or explicitly not a header value', () => {
    assert.equal(unclassified.length, 0,
      `exports this test does not know how to check against the headers (teach test/uapi.test.ts): ${unclassified.join(', ')}`);
  });

  const groups = [...new Set(items.map((it) => it.group))];
  for (const group of groups) {
    await t.test(`${group}: every item the headers define has the header's value`, () => {
      const mismatches: string[] = [];
      let compared = 0;
      for (const it of items.filter((x) => x.group === group)) {
        const i = idx(it);
        if (!has(i)) continue;
        const got = run.values.get(i);
        assert.ok(got, `${it.label}: present in the headers but the program printed nothing for it`);
        compared++;
        if (it.kind === 'const') {
          if (!Number.isSafeInteger(it.expected)) mismatches.push(`${it.label}: src/uapi value ${it.expected} is not an integer`);
          else if (got[0] !== BigInt(it.expected)) {
            mismatches.push(`${it.label}: header ${hex(got[0]!)} (${got[0]}), src/uapi/${it.source} ${hex(it.expected)} (${it.expected})`);
          }
        } else if (it.kind === 'field') {
          const [off, size, signed] = got;
          const want = { offset: BigInt(it.offset), size: BigInt(WIDTH[it.type]), signed: it.type === 's32' ? 1n : 0n };
          if (off !== want.offset) mismatches.push(`offsetof(struct ${it.label.replace('.', ', ')}): header ${off}, src/uapi ${want.offset}`);
          if (size !== want.size) mismatches.push(`sizeof(${it.label}): header ${size}, src/uapi ${want.size} (${it.type})`);
          if (signed !== want.signed) mismatches.push(`${it.label}: header type is ${signed ? 'signed' : 'unsigned'}, src/uapi says ${it.type}`);
        } else {
          // The header's struct must be our layout, or a prefix of it when the header predates the
          // trailing fields (Linux 6.1's vfio_device_info has no `pad`): compare with cstruct() of
          // exactly the fields the header has, and those must come before every field it lacks.
          const fields = items.filter((x): x is FieldItem => x.kind === 'field' && x.layout === it.layout);
          const presentFields = fields.filter((f) => has(idx(f)));
          const firstAbsent = fields.findIndex((f) => !has(idx(f)));
          const lastPresent = fields.reduce((last, f, k) => (has(idx(f)) ? k : last), -1);
          if (firstAbsent !== -1 && firstAbsent < lastPresent) {
            mismatches.push(`struct ${it.layout.name}: the header lacks ${fields[firstAbsent]!.name} but has the later field ${fields[lastPresent]!.name} (misspelt field name?)`);
          }
          const want = firstAbsent === -1
            ? it.layout.size
            : cstruct(it.layout.name, presentFields.map((f) => [f.name, f.type] as const)).size;
          if (got[0] !== BigInt(want)) {
            mismatches.push(`${it.label}: header ${got[0]}, src/uapi ${want}${firstAbsent === -1 ? '' : ` (the layout up to ${fields[lastPresent]?.name ?? 'nothing'})`}`);
          }
        }
      }
      assert.equal(mismatches.length, 0, `${group}: ${mismatches.length} mismatch(es) with the installed headers:\n  ${mismatches.join('\n  ')}`);
      assert.ok(compared > 0, `${group}: nothing was compared (all ${items.filter((x) => x.group === group).length} items absent from the headers?)`);
    });
  }

  await t.test('what the headers lack is only what they may lack', () => {
    const absent = items.filter((it) => !has(idx(it)));
    const problems: string[] = [];
    // Outside vfio.h the headers are long-stable: an absent name there is a misspelling.
    for (const it of absent) {
      if (it.source !== 'vfio.ts' && !KERNEL_INTERNAL.has(it.label)) problems.push(`${it.label} (src/uapi/${it.source}) is in no installed header`);
    }
    // The 6.1-era vfio structs must be there, so the floor of what is compared is never empty.
    for (const name of VFIO_STRUCTS_SINCE_6_1) {
      const s = items.find((it) => it.kind === 'struct' && it.layout.name === name);
      if (!s) problems.push(`src/uapi/vfio.ts has no layout for struct ${name}`);
      else if (!has(idx(s))) problems.push(`struct ${name} is not in the installed <linux/vfio.h>`);
    }
    // ioctl and feature numbers are allocated in order: the ones a header lacks must be newer
    // (higher) than every one it has, or else an entry is misspelt.
    for (const group of ['vfio.ts IOCTLS', 'vfio.ts FEATURES']) {
      const table = items.filter((x): x is ConstItem => x.kind === 'const' && x.group === group);
      const newestPresent = Math.max(...table.filter((x) => has(idx(x))).map((x) => x.expected));
      for (const x of table) {
        if (!has(idx(x)) && x.expected < newestPresent) problems.push(`${x.label} (${hex(x.expected)}) is absent although the header has newer ${group} entries`);
      }
    }
    assert.equal(problems.length, 0, problems.join('\n'));
  });

  const compared = items.filter((it) => has(idx(it)));
  const absent = items.filter((it) => !has(idx(it)));
  const count = (xs: Item[], kind: Item['kind']) => xs.filter((x) => x.kind === kind).length;
  t.diagnostic(`installed uAPI headers: Linux ${run.kernelVersion}`);
  t.diagnostic(`compared ${compared.length} of ${items.length} items: ${count(compared, 'const')} constants, ` +
    `${count(compared, 'struct')} struct sizes, ${count(compared, 'field')} fields (offset, size and signedness each)`);
  const internal = absent.filter((it) => KERNEL_INTERNAL.has(it.label));
  const missing = absent.filter((it) => !KERNEL_INTERNAL.has(it.label));
  t.diagnostic(`absent from the installed headers (${missing.length}): ${missing.map((it) => it.label).join(', ') || 'none'}`);
  t.diagnostic(`kernel-internal, in no uAPI header (${internal.length}): ${internal.map((it) => it.label).join(', ') || 'none'}`);
});
