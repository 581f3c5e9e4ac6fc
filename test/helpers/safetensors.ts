import { readFileSync } from "node:fs";
import { expect } from "vitest";

/**
 * A test-only F32 safetensors reader, independent of src/formats, so checks of written adapters do
 * not trust the library's own reader.
 */
export function readSafetensorsF32(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    expect(t.dtype).toBe("F32");
    const copy = new Uint8Array(bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]));
    out.set(name, { shape: t.shape, data: new Float32Array(copy.buffer) });
  }
  return out;
}
