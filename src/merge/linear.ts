import { availableParallelism } from "node:os";
import { throwIfAborted } from "../errors.js";
import type { ProgressSink } from "../util/progress.js";
import { startWorker, WorkerChannel } from "../util/workers.js";
import type { LinearJob, LinearOutcome } from "./linearWorker.js";
import type { WeightedAdapter } from "./sources.js";
import type { TensorSink } from "./write.js";

/**
 * Tensors are mixed in slabs of consecutive tensors of at most this many elements: per element, the
 * workers' float64 accumulators and two float32 read buffers plus the shared float32 result cost 24
 * bytes, so memory stays under ~400 MB whatever the bank size, while a Mistral adapter (9.4M
 * parameters) is one slab, i.e. one sequential pass per file.
 */
const SLAB_ELEMENTS = 16 * 1024 * 1024;

export interface LinearMixStats {
  bytesRead: number;
}

type SlabTensor = { name: string; numel: number; offset: number };

/** Splits a slab's tensors into `parts` groups of similar element counts (largest first, greedy). */
function partition(tensors: SlabTensor[], parts: number): SlabTensor[][] {
  const groups: SlabTensor[][] = Array.from({ length: parts }, () => []);
  const sizes = new Array<number>(parts).fill(0);
  for (const t of [...tensors].sort((a, b) => b.numel - a.numel)) {
    const k = sizes.indexOf(Math.min(...sizes));
    groups[k]!.push(t);
    sizes[k]! += t.numel;
  }
  return groups.filter((g) => g.length > 0);
}

/**
 * Paper-compatible mix: every tensor is Σ_j w_j T_j (A and B separately), accumulated in float64 so
 * the result does not depend on the order of hundreds of adapters. The summation runs on worker
 * threads (kept for the whole mix), each owning part of every slab's tensors.
 */
export async function mixLinear({
  sources,
  sink,
  threads = Math.min(2, availableParallelism()),
  signal,
  progress,
}: {
  sources: WeightedAdapter[];
  sink: TensorSink;
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<LinearMixStats> {
  const layout = (sources[0] as WeightedAdapter).adapter.layout;
  const slabs: SlabTensor[][] = [];
  let current: SlabTensor[] = [];
  let size = 0;
  for (const t of layout.tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (current.length > 0 && size + numel > SLAB_ELEMENTS) {
      slabs.push(current);
      current = [];
      size = 0;
    }
    current.push({ name: t.name, numel, offset: size });
    size += numel;
  }
  if (current.length > 0) slabs.push(current);

  const maxSlab = Math.max(...slabs.map((s) => s.reduce((n, t) => n + t.numel, 0)));
  const shared = new SharedArrayBuffer(maxSlab * 4);
  const result = new Float32Array(shared);
  const abort = new SharedArrayBuffer(4);
  const stop = () => Atomics.store(new Int32Array(abort), 0, 1);
  signal?.addEventListener("abort", stop, { once: true });
  const files = sources.map((s) => s.adapter.file);
  const weights = sources.map((s) => s.weight);
  const workerCount = Math.max(1, Math.min(threads, ...slabs.map((s) => s.length)));
  const workers = Array.from(
    { length: workerCount },
    () =>
      new WorkerChannel<LinearJob, LinearOutcome, "adapter">(
        startWorker(new URL("./linearWorker.js", import.meta.url)),
      ),
  );
  let bytesRead = 0;
  let done = 0;
  const total = slabs.length * sources.length * workerCount;
  try {
    for (const slab of slabs) {
      throwIfAborted(signal);
      const groups = partition(slab, workerCount);
      const outcomes = await Promise.all(
        groups.map((tensors, w) =>
          (workers[w] as (typeof workers)[number]).request(
            { files, weights, tensors, result: shared, abort },
            {
              onEvent: () => {
                done++;
                progress?.({ phase: "mix linear", done, total, unit: "tensor-group reads" });
              },
            },
          ),
        ),
      );
      for (const o of outcomes) bytesRead += o.bytesRead;
      throwIfAborted(signal);
      for (const t of slab) {
        throwIfAborted(signal);
        await sink.append(result.subarray(t.offset, t.offset + t.numel), t.name);
      }
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return { bytesRead };
}
