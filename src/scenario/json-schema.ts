// The scenario format as a JSON Schema (draft 2020-12), generated from the zod schemas the loader
// uses (zod's toJSONSchema), so that an editor with a YAML language server completes and checks a
// scenario: each step is a one-key map of one operation; numbers are integers or strings (0x-hex,
// size suffixes, names bound with `as:`); profiles, kernels and invariants are the model's own.
// The loader still checks what no schema can say (names bound before use, BAR layouts, ...).
import { z } from 'zod';
import { OPS, deviceFile, num, scenario } from './schema.ts';
import { PROFILES } from '../kernel/pci/profiles.ts';
import { KERNELS } from '../kernel/variants.ts';
import { INVARIANTS } from '../kernel/invariants.ts';
import { ERRNO } from '../uapi/errno.ts';

type Json = Record<string, unknown>;

const NUMBER: Json = {
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  description: 'a number: decimal, 0x-hex, with a size suffix (4KiB, 2MiB, 1GiB), a name bound with as:, name.field, or a sum of these',
};

/** zod -> JSON Schema, numbers as NUMBER and bigint literals as integers. */
function toJson(schema: z.ZodType): Json {
  const out = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    override(ctx) {
      const def = (ctx.zodSchema as unknown as { _zod: { def: { type: string; values?: unknown[] } } })._zod.def;
      const js = ctx.jsonSchema as Json;
      const set = (v: Json) => {
        for (const k of Object.keys(js)) delete js[k];
        Object.assign(js, v);
      };
      if (ctx.zodSchema === (num as unknown)) set({ ...NUMBER });
      else if (def.type === 'bigint') set({ type: 'integer' });
      else if (def.type === 'literal' && def.values?.some((v) => typeof v === 'bigint')) set({ const: Number(def.values[0]) });
    },
  }) as Json;
  delete out.$schema;
  // expect: { errno } names an errno (the loader's refine, which JSON Schema cannot carry over)
  const walk = (x: unknown): void => {
    if (!x || typeof x !== 'object') return;
    const o = x as Json;
    const errno = (o.properties as Record<string, Json> | undefined)?.errno;
    if (errno && errno.type === 'string') errno.enum = Object.keys(ERRNO);
    for (const v of Object.values(o)) walk(v);
  };
  walk(out);
  return out;
}

/** The JSON Schema of a scenario file. */
export function scenarioJsonSchema(): Json {
  const top = toJson(scenario);
  const props = top.properties as Record<string, Json>;
  // every operation takes the same expect: one definition, referred to
  let expect: Json | undefined;
  const opSchema = (s: z.ZodType): Json => {
    const j = toJson(s);
    const p = j.properties as Record<string, Json> | undefined;
    if (p?.expect) {
      expect ??= p.expect;
      p.expect = { $ref: '#/$defs/expect' };
    }
    return j;
  };
  const step: Json = {
    description: 'one operation: a one-key map, e.g. - mmap: { fd: dev, length: 2MiB, as: m }',
    oneOf: Object.entries(OPS).map(([op, s]) => ({
      type: 'object',
      properties: { [op]: opSchema(s as z.ZodType) },
      required: [op],
      additionalProperties: false,
    })),
  };
  props.setup = { type: 'array', items: { $ref: '#/$defs/step' }, description: 'steps run to completion, in order, before the threads start' };
  (props.threads as Json).additionalProperties = { type: 'array', items: { $ref: '#/$defs/step' } };
  const devices = props.devices as Json;
  ((devices.items as Json).properties as Record<string, Json>).profile = { type: 'string', enum: PROFILES.map((p) => p.id) };
  const kernels = Object.keys(KERNELS);
  props.kernels = { type: 'array', minItems: 1, items: { type: 'string', enum: kernels } };
  const finding = { anyOf: [{ type: 'string', enum: [...INVARIANTS] }, { type: 'object', properties: { invariant: { type: 'string', enum: [...INVARIANTS] }, message: { type: 'string', minLength: 1 } }, required: ['invariant', 'message'], additionalProperties: false }] };
  props.expect_violations = { type: 'object', propertyNames: { enum: [...kernels, '*'] }, additionalProperties: { type: 'array', items: finding } };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/vfio-sim/vfio-sim/schema/scenario.schema.json',
    title: 'vfio-sim scenario',
    ...top,
    $defs: { step, expect },
  };
}

/** The JSON Schema of a device file (docs/devices.md). */
export function deviceJsonSchema(): Json {
  const top = toJson(deviceFile);
  (top.properties as Record<string, Json>).profile = { type: 'string', enum: PROFILES.map((p) => p.id), description: 'a built-in profile the file starts from' };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/vfio-sim/vfio-sim/schema/device.schema.json',
    title: 'vfio-sim device file',
    ...top,
  };
}
