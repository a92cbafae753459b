// docs/scenario-format.md: the scenario format's reference, written from the same schemas the
// loader uses (through the JSON Schema) and the comments above each operation in schema.ts, so the
// reference cannot drift from what the loader accepts (test/json-schema.test.ts compares it).
// `npm run docs:format` rewrites it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { scenarioJsonSchema } from './json-schema.ts';

type Json = Record<string, unknown>;

const INTRO = `# The scenario format

A scenario is a YAML file: the devices, optional setup steps, and one or more threads of steps.
\`schema/scenario.schema.json\` is the same format as a JSON Schema, for editors; the loader checks
more (names bound before use, BAR layouts, fork targets) and names file, line and field in every
error. This file is generated from the loader's schemas (\`npm run docs:format\`).

\`\`\`yaml
# yaml-language-server: $schema=../schema/scenario.schema.json
name: quickstart
devices:
  - { name: gpu0, profile: h100 }             # vfio-sim devices lists the profiles
setup:                                       # optional: run to completion before the threads
  - open: { path: /dev/vfio/devices/gpu0, as: dev }
threads:                                     # each runs concurrently; P/T names thread T of process P
  main:
    - mmap: { fd: dev, offset: 0, length: 2MiB, prot: [read, write], flags: [shared], as: m }
    - store: { addr: m, offset: 0x1000, width: 4, value: 0xdeadbeef, expect: { ok: true, order: 9 } }
kernels: [series-v4, series-v8]              # optional: the kernels the expect: lines describe
expect_violations: { series-v4: [no-stale-pte] }   # optional: findings the model must report
\`\`\`

## Values

Numbers are decimal or 0x-hex, with an optional size suffix (\`4KiB\`, \`2MiB\`, \`1GiB\`). A name
bound with \`as:\` stands for the step's result (an fd, an address, an id), \`name.field\` for a field
the kernel wrote back (\`r0.offset\` of a REGION_INFO), and values may be summed (\`r2.offset + 4KiB\`).
A name not bound yet (another thread has not got there) reads as -1.

## Expectations

Every step takes \`expect:\` with at most one of \`ok: true\`, \`errno: NAME\` or \`signal: SIGBUS |
SIGSEGV\`, and optionally \`value\` (the result, compared as a u64), \`order\` (0, 9 or 18: the page
size the step's last installing fault used) and, for \`maps\`, \`line\` (a glob one line of
/proc/PID/maps must match). A step whose expectation fails fails the run (exit 1) and, under
\`check\`, is a counterexample.

## A guest (KVM)

\`kvm_create_vm\` (or \`open: { path: /dev/kvm }\` and the raw \`KVM_CREATE_VM\` ioctl) makes a VM of the
calling process; \`kvm_set_memory_region\` (or the raw \`KVM_SET_USER_MEMORY_REGION\` with its uAPI
fields \`slot\`, \`flags\`, \`guest_phys_addr\`, \`memory_size\`, \`userspace_addr\`) gives it a range of
the process's memory, a BAR mmap or anonymous RAM, at a guest-physical address. \`guest_load\` and
\`guest_store\` stand for a vCPU's KVM_RUN that makes one access: its result is \`ok\` (with the value
read), \`errno: EFAULT\` when the host could not fault the page in (KVM_RUN's -EFAULT with
exit_reason KVM_EXIT_MEMORY_FAULT, named in the step's detail), or \`ok\` with \`out.exit_reason:
KVM_EXIT_MMIO\` for a gpa in no memory slot. A step of a process that did not make the VM gets
EIO, one whose \`vm\` is not a VM ENOTTY.

## Findings and kernels

\`kernels:\` lists the kernels the scenario's expectations hold on (\`vfio-sim kernels\`); \`run\` and
\`check\` use the default kernel, or the first listed when the default is not. \`expect_violations:\`
maps a kernel (or \`*\`) to the invariants the faithful model must report there (docs/invariants.md
names them): a bare name expects any violation of it; \`{ invariant, message }\` only those whose
message matches the glob (\`*\` any run of characters, \`|\` between alternatives), so that \`check\`
still reports any other.

\`lockdep_history:\` lists dependencies lockdep had recorded earlier in the boot, from code the
model does not run (CPU hotplug, sysfs, perf, the IOMMU's DMA domain set-up), written as
Documentation/locking/lockdep-design.rst writes them: \`'A -(XY)-> B'\`, with X \`E\` (A held as a
writer) or \`S\` (as a reader) and Y \`N\` (B taken as a writer or non-recursive reader) or \`R\` (as a
recursive reader). A and B are lock classes as the model names them (\`memory_lock\`, \`mmap_lock\`,
\`iommu_group.mutex\`) or as the kernel does (\`cpu_hotplug_lock\`). A circle the scenario's steps
close through them is reported like any other (\`scenarios/mmap-vs-reset-lockdep.yaml\`).
`;

/** How a field's type reads in the reference. */
function typeOf(j: Json | undefined): string {
  if (!j) return 'any';
  if (j.$ref === '#/$defs/expect') return 'expectation';
  if (typeof j.description === 'string' && j.description.startsWith('a number')) return 'number';
  if (Array.isArray(j.enum)) return j.enum.map(String).join(' \\| ');
  if (j.const !== undefined) return String(j.const);
  if (Array.isArray(j.anyOf)) return [...new Set((j.anyOf as Json[]).map(typeOf))].join(' or ');
  if (j.type === 'array') return `list of ${typeOf(j.items as Json)}`;
  if (j.type === 'object') {
    const p = j.properties as Record<string, Json> | undefined;
    return p ? `{ ${Object.keys(p).join(', ')} }` : 'map';
  }
  if (j.type === 'string' && typeof j.pattern === 'string') return 'name';
  return Array.isArray(j.type) ? j.type.join(' or ') : String(j.type ?? 'any');
}

/** The comment above each operation in schema.ts, by operation name. */
function opComments(src: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n\s*([a-z_]+):/g;
  for (let m; (m = re.exec(src)); ) {
    const text = m[1].split('\n').map((l) => l.replace(/^\s*\*\s?/, '').trim()).filter(Boolean).join(' ');
    out.set(m[2], text);
  }
  return out;
}

/** The whole reference, as markdown. */
export function scenarioFormatDoc(schemaSource: string): string {
  const js = scenarioJsonSchema();
  const comments = opComments(schemaSource);
  const lines: string[] = [INTRO, '## Devices', '', '| field | type | required |', '|---|---|---|'];
  const device = ((js.properties as Record<string, Json>).devices.items as Json);
  const dreq = new Set((device.required as string[] | undefined) ?? []);
  for (const [f, t] of Object.entries(device.properties as Record<string, Json>)) lines.push(`| \`${f}\` | ${typeOf(t)} | ${dreq.has(f) ? 'yes' : ''} |`);
  lines.push('', '## Operations', '', 'Each step is a one-key map: the operation, then its fields. All take `expect:`; all but `exit`, `post`, `wait` and `unbind` take `as:` (bind the result; for `fork`, required: the child process).', '');
  for (const alt of ((js.$defs as Json).step as Json).oneOf as Json[]) {
    const [op, schema] = Object.entries(alt.properties as Record<string, Json>)[0];
    const props = (schema.properties as Record<string, Json> | undefined) ?? {};
    const req = new Set((schema.required as string[] | undefined) ?? []);
    lines.push(`### ${op}`, '');
    const c = comments.get(op);
    if (c) lines.push(c, '');
    const fields = Object.entries(props).filter(([f]) => (f !== 'as' || req.has(f)) && f !== 'expect');
    if (fields.length) {
      lines.push('| field | type | required |', '|---|---|---|');
      for (const [f, t] of fields) lines.push(`| \`${f}\` | ${typeOf(t)} | ${req.has(f) ? 'yes' : ''} |`);
      lines.push('');
    }
  }
  return lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(scenarioFormatDoc(readFileSync(new URL('./schema.ts', import.meta.url), 'utf8')));
}
