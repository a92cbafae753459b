// Byte-exact little-endian struct codecs over DataView: a layout is an ordered field list with C offsets.
export type FieldType = 'u8' | 'u16' | 'u32' | 's32' | 'u64';
export interface Field { name: string; type: FieldType; offset: number }
export interface Layout { name: string; size: number; fields: readonly Field[] }
export type StructValue = Record<string, number | bigint>;

const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };
/** A field's size in bytes. */
export const fieldSize = (f: Field) => WIDTH[f.type];

/** Build a layout from [name, type] pairs with C natural alignment (what gcc does on x86-64). */
export function cstruct(name: string, members: ReadonlyArray<readonly [string, FieldType]>): Layout {
  let off = 0, align = 1;
  const fields: Field[] = [];
  for (const [fname, type] of members) {
    const w = WIDTH[type];
    off = Math.ceil(off / w) * w;
    fields.push({ name: fname, type, offset: off });
    off += w;
    align = Math.max(align, w);
  }
  return { name, size: Math.ceil(off / align) * align, fields };
}

export function fieldOf(layout: Layout, name: string): Field {
  const f = layout.fields.find((x) => x.name === name);
  if (!f) throw new Error(`${layout.name} has no field ${name}`);
  return f;
}
export const offsetofend = (layout: Layout, name: string) => {
  const f = fieldOf(layout, name);
  return f.offset + WIDTH[f.type];
};

export function readField(dv: DataView, base: number, f: Field): number | bigint {
  const o = base + f.offset;
  switch (f.type) {
    case 'u8': return dv.getUint8(o);
    case 'u16': return dv.getUint16(o, true);
    case 'u32': return dv.getUint32(o, true);
    case 's32': return dv.getInt32(o, true);
    case 'u64': return dv.getBigUint64(o, true);
  }
}
export function writeField(dv: DataView, base: number, f: Field, v: number | bigint): void {
  const o = base + f.offset;
  switch (f.type) {
    case 'u8': dv.setUint8(o, Number(v)); break;
    case 'u16': dv.setUint16(o, Number(v), true); break;
    case 'u32': dv.setUint32(o, Number(BigInt.asUintN(32, BigInt(v))), true); break;
    case 's32': dv.setInt32(o, Number(BigInt.asIntN(32, BigInt(v))), true); break;
    case 'u64': dv.setBigUint64(o, BigInt.asUintN(64, BigInt(v)), true); break;
  }
}

/** Decode the fields that lie wholly inside `bytes` (a short buffer yields only its prefix). */
export function decode(layout: Layout, bytes: Uint8Array, base = 0): StructValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: StructValue = {};
  for (const f of layout.fields) if (base + f.offset + WIDTH[f.type] <= bytes.byteLength) out[f.name] = readField(dv, base, f);
  return out;
}
/** Encode into a new buffer of `size` bytes (default the struct size); unknown keys are an error. */
export function encode(layout: Layout, v: StructValue, size = layout.size): Uint8Array {
  const buf = new Uint8Array(size);
  encodeInto(layout, v, buf, 0);
  return buf;
}
export function encodeInto(layout: Layout, v: StructValue, buf: Uint8Array, base: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const [k, val] of Object.entries(v)) {
    const f = fieldOf(layout, k);
    if (base + f.offset + WIDTH[f.type] <= buf.byteLength) writeField(dv, base, f, val);
  }
}
