import { type SafetensorsDtype, type TensorToWrite, writeSafetensors } from "../formats/safetensors.js";

/** Where mixed tensors go, one at a time, in the order they were declared. */
export interface TensorSink {
  write(name: string, data: Float32Array): Promise<void>;
}

const OUTPUT_DTYPES = new Set<SafetensorsDtype>(["F32", "F16", "BF16", "F64"]);

/**
 * A sink for the tensors of one safetensors file with a known list of tensors: checks each write
 * against the declared name and size, and writes the file when `finish` is called.
 */
export function safetensorsSink(
  path: string,
  specs: { name: string; shape: number[] }[],
  dtype: SafetensorsDtype,
): TensorSink & { finish(): Promise<void> } {
  const outDtype = (OUTPUT_DTYPES.has(dtype) ? dtype : "F32") as TensorToWrite["dtype"];
  const tensors: TensorToWrite[] = [];
  return {
    async write(name, data) {
      const spec = specs[tensors.length];
      const numel = spec?.shape.reduce((a, b) => a * b, 1);
      if (!spec || spec.name !== name || numel !== data.length) {
        throw new Error(`tensor sink: got ${name} (${data.length}), expected ${spec?.name} (${numel})`);
      }
      // The caller reuses its buffers, so the data is copied.
      tensors.push({ name, dtype: outDtype, shape: spec.shape, data: Float32Array.from(data) });
    },
    async finish() {
      if (tensors.length !== specs.length) {
        throw new Error(`tensor sink: ${tensors.length} of ${specs.length} tensors written`);
      }
      await writeSafetensors(path, tensors, { format: "pt" });
    },
  };
}
