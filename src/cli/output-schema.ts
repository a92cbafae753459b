// JSON Schemas (draft 2020-12) of the documents --json prints, generated from zod schemas here and
// shipped as schema/<name>-output.schema.json: `run` (one document, or an array for several runs),
// `check` (and `merge`), and `replay`. Keys are snake_case and u64 values 0x-hex strings (json.ts).
// test/output-schema.test.ts validates real output against them.
import { z } from 'zod';
import { INVARIANTS } from '../kernel/invariants.ts';

const hex = z.string().regex(/^0x[0-9a-f]+$/).describe('a u64 as a 0x-hex string');
const result = z.union([
  z.object({ ok: z.literal(true), value: z.union([z.number(), hex]).optional().describe("the call's return: an fd or count (number), an address or u64 (hex)"), out: z.record(z.string(), z.unknown()).optional().describe('fields the kernel wrote back, by their uAPI names') }).strict(),
  z.object({ errno: z.string().regex(/^E[A-Z0-9]+$/) }).strict(),
  z.object({ signal: z.enum(['SIGBUS', 'SIGSEGV']) }).strict(),
]);
const fault = z.object({ va: hex, order: z.union([z.literal(0), z.literal(9), z.literal(18)]), pgoff: hex, pfn: hex.nullable(), outcome: z.enum(['NOPAGE', 'FALLBACK', 'SIGBUS']) }).strict();
const step = z
  .object({
    thread: z.string().describe('"setup" for setup steps'),
    index: z.number().int().min(0).describe("the step's index in its thread"),
    op: z.string(),
    call: z.string().describe('the call in words, e.g. "config_write dev COMMAND = 0x0" or "ioctl dev VFIO_DEVICE_FEATURE GET DMA_BUF region 2 [0x800+4KiB] as buf"'),
    result,
    faults: z.array(fault).optional().describe("the fault handler's calls, as vfio_pci_core's dev_dbg line prints them"),
    mismatch: z.string().optional().describe('set when the expectation was not met'),
    detail: z.string().optional().describe('the ioctl or feature, or where a signal hit'),
    line: z.number().int().describe("the step's line in the scenario file"),
  })
  .strict();
const violation = z.object({ invariant: z.enum(['expect', ...INVARIANTS] as [string, ...string[]]), message: z.string(), step: z.number().int().optional(), expected: z.boolean().optional().describe("listed in the scenario's expect_violations") }).strict();

const runDoc = z
  .object({
    scenario: z.string(),
    kernel: z.string(),
    mutant: z.string().optional(),
    steps: z.array(step),
    violations: z.array(violation),
    final: z.object({ processes: z.array(z.unknown()), dmabufs: z.array(z.unknown()), devices: z.array(z.unknown()), vms: z.array(z.unknown()) }).describe('page tables, DMABUFs, devices and KVM VMs (memory slots, second-stage table) at the end'),
    exit: z.union([z.literal(0), z.literal(1)]),
    problems: z.array(z.string()).describe('failed expectations and unexpected violations, in words'),
    file: z.string().optional().describe('with several runs: the scenario file'),
  })
  .strict();

const traceStep = z
  .object({
    step: z.number().int(),
    thread: z.string(),
    op: z.string().describe('the kernel event: a lock operation, an access, a count'),
    obj: z.string(),
    notes: z.array(z.string()).describe('what the step changed'),
    finished: z.array(z.object({ thread: z.string(), index: z.number().int(), op: z.string(), result, mismatch: z.string().optional() }).strict()).describe('operations that finished in this step'),
  })
  .strict();
const trace = z
  .object({
    steps: z.array(traceStep),
    locks_at_end: z.array(z.object({ thread: z.string(), held: z.array(z.object({ lock: z.string(), mode: z.enum(['read', 'write']) }).strict()), state: z.enum(['done', 'sleeping', 'runnable']), next: z.string().optional() }).strict()),
  })
  .strict()
  .describe('the lock-level trace: every kernel step of the interleaving');

const checkDoc = z
  .object({
    scenario: z.string(),
    kernel: z.string(),
    mutant: z.string().optional(),
    mode: z.string().describe('dpor, bounded(K), pct(...), naive, or with shards/workers'),
    executions: z.number().int(),
    sleep_blocked: z.number().int(),
    steps: z.number().int(),
    max_depth: z.number().int(),
    complete: z.boolean().describe('every interleaving (of the mode) explored; false when cut short'),
    elapsed_ms: z.number(),
    states: z.number().int().optional(),
    states_cut: z.number().int().optional(),
    states_stores: z.number().int().optional().describe('present when jobs kept a store each (shards, merge): states is then their sum, not a count of distinct states'),
    atomic_restarts: z.number().int().optional(),
    naive_executions: z.number().int().optional(),
    naive_complete: z.boolean().optional(),
    violation: z
      .object({
        invariant: z.string(),
        message: z.string(),
        schedule: z.string().describe('THREAD:COUNT,... for replay --schedule'),
        preemptions: z.number().int(),
        replay: z.string().describe('the command that replays it'),
        steps: z.array(step),
        violations: z.array(violation),
        trace,
      })
      .strict()
      .nullable(),
  })
  .strict();

const replayDoc = z
  .object({
    scenario: z.string(),
    schedule: z.string(),
    diverged: z.string().nullable().describe('where the schedule could not be followed, if it could not'),
    steps: z.array(step),
    violations: z.array(violation),
    failure: z.object({ invariant: z.string(), message: z.string() }).strict().nullable(),
    trace,
  })
  .strict();

export const OUTPUT_SCHEMAS = {
  run: z.union([runDoc, z.array(runDoc)]).describe('vfio-sim run --json: one document, or an array of them for several runs'),
  check: checkDoc.describe('vfio-sim check --json (without --shard) and merge --json'),
  replay: replayDoc.describe('vfio-sim replay --json'),
};
export type OutputName = keyof typeof OUTPUT_SCHEMAS;

export function outputJsonSchema(name: OutputName): Record<string, unknown> {
  const js = z.toJSONSchema(OUTPUT_SCHEMAS[name], { io: 'output' }) as Record<string, unknown>;
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', $id: `https://github.com/vfio-sim/vfio-sim/schema/${name}-output.schema.json`, title: `vfio-sim ${name} --json`, ...js };
}
