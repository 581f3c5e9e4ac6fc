import { throwIfAborted } from "../errors.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import type { ProgressSink } from "../util/progress.js";
import type { WeightedAdapter } from "./sources.js";
import type { TensorSink } from "./write.js";

/**
 * Tensors are mixed in slabs of consecutive tensors of at most this many elements: the slab's
 * float64 accumulator, two float32 read buffers (one filling while the other is summed) and the
 * float32 result cost 24 bytes per element, so memory stays under ~400 MB whatever the bank size,
 * while a Mistral adapter (9.4M parameters) is one slab, i.e. one sequential pass per file.
 */
const SLAB_ELEMENTS = 16 * 1024 * 1024;

export interface LinearMixStats {
  bytesRead: number;
}

/**
 * Paper-compatible mix: every tensor is Σ_j w_j T_j (A and B separately). Accumulates in float64
 * so that the result does not depend on the order of hundreds of adapters.
 */
export async function mixLinear({
  sources,
  sink,
  signal,
  progress,
}: {
  sources: WeightedAdapter[];
  sink: TensorSink;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<LinearMixStats> {
  const layout = (sources[0] as WeightedAdapter).adapter.layout;
  const tensors = layout.tensors.map((t) => ({ ...t, numel: t.shape.reduce((a, b) => a * b, 1) }));
  const slabs: (typeof tensors)[] = [];
  let current: typeof tensors = [];
  let size = 0;
  for (const t of tensors) {
    if (current.length > 0 && size + t.numel > SLAB_ELEMENTS) {
      slabs.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.numel;
  }
  if (current.length > 0) slabs.push(current);

  const maxSlab = Math.max(...slabs.map((s) => s.reduce((n, t) => n + t.numel, 0)));
  const acc = new Float64Array(maxSlab);
  const buffers = [new Float32Array(maxSlab), new Float32Array(maxSlab)] as const;
  const result = new Float32Array(maxSlab);
  let bytesRead = 0;
  let done = 0;
  const total = slabs.length * sources.length;

  for (const slab of slabs) {
    const offsets: number[] = [];
    let slabSize = 0;
    for (const t of slab) {
      offsets.push(slabSize);
      slabSize += t.numel;
    }
    acc.fill(0, 0, slabSize);
    // Reads of the next adapter run on the thread pool while this one is summed.
    const load = async (j: number, buffer: Float32Array): Promise<void> => {
      const { adapter } = sources[j] as WeightedAdapter;
      const reader = await SafetensorsReader.open(adapter.file);
      try {
        await Promise.all(
          slab.map((t, i) => {
            const at = offsets[i] as number;
            return reader.readF32(t.name, buffer.subarray(at, at + t.numel));
          }),
        );
      } finally {
        await reader.close();
      }
      for (const t of slab) {
        const info = adapter.header.tensors.get(t.name);
        if (info) bytesRead += info.end - info.begin;
      }
    };
    let pending = load(0, buffers[0]);
    try {
      for (let j = 0; j < sources.length; j++) {
        await pending;
        throwIfAborted(signal);
        const buffer = buffers[j % 2] as Float32Array;
        if (j + 1 < sources.length) pending = load(j + 1, buffers[(j + 1) % 2] as Float32Array);
        const w = (sources[j] as WeightedAdapter).weight;
        for (let i = 0; i < slabSize; i++) acc[i] = (acc[i] as number) + w * (buffer[i] as number);
        done++;
        progress?.({ phase: "mix linear", done, total, unit: "adapter reads" });
      }
    } catch (error) {
      // The prefetch may still hold a file open; let it finish before the temp dir is removed.
      await pending.catch(() => {});
      throw error;
    }
    for (let i = 0; i < slabSize; i++) result[i] = acc[i] as number;
    for (const [i, t] of slab.entries()) {
      throwIfAborted(signal);
      const at = offsets[i] as number;
      await sink.write(t.name, result.subarray(at, at + t.numel));
    }
  }
  return { bytesRead };
}
