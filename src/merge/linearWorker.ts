/**
 * A linear-mix worker: sums its share of a slab's tensors over all adapters (Σ_j w_j T_j) into a
 * float64 accumulator and writes the float32 result into the shared slab buffer. Reads of the next
 * adapter overlap the summation of the current one; buffers are kept across slabs.
 */
import { SafetensorsReader } from "../formats/safetensors.js";
import { type RequestIo, serveRequests } from "../util/workers.js";

export interface LinearJob {
  files: string[];
  weights: number[];
  /** This worker's tensors and where each goes in the shared slab. */
  tensors: { name: string; offset: number; numel: number }[];
  result: SharedArrayBuffer;
  /** Int32 flag: non-zero asks the worker to stop between adapters. */
  abort: SharedArrayBuffer;
}

/** The result of a job; each adapter summed is reported as an event ("adapter"). */
export interface LinearOutcome {
  bytesRead: number;
  aborted: boolean;
}

let acc = new Float64Array(0);
let buffers = [new Float32Array(0), new Float32Array(0)];

async function run(job: LinearJob, io: RequestIo<"adapter">): Promise<LinearOutcome> {
  const size = job.tensors.reduce((n, t) => n + t.numel, 0);
  if (acc.length < size) {
    acc = new Float64Array(size);
    buffers = [new Float32Array(size), new Float32Array(size)];
  }
  acc.fill(0, 0, size);
  const local: number[] = [];
  let at = 0;
  for (const t of job.tensors) {
    local.push(at);
    at += t.numel;
  }
  const stop = new Int32Array(job.abort);
  let bytesRead = 0;
  const load = async (j: number, buffer: Float32Array): Promise<void> => {
    const reader = await SafetensorsReader.open(job.files[j] as string);
    try {
      await Promise.all(
        job.tensors.map((t, i) => {
          const o = local[i] as number;
          const info = reader.info(t.name);
          bytesRead += info.end - info.begin;
          return reader.readF32(t.name, buffer.subarray(o, o + t.numel));
        }),
      );
    } finally {
      await reader.close();
    }
  };
  let pending = load(0, buffers[0] as Float32Array);
  try {
    for (let j = 0; j < job.files.length; j++) {
      await pending;
      if (Atomics.load(stop, 0) !== 0) return { bytesRead, aborted: true };
      const buffer = buffers[j % 2] as Float32Array;
      if (j + 1 < job.files.length) pending = load(j + 1, buffers[(j + 1) % 2] as Float32Array);
      const w = job.weights[j] as number;
      for (let i = 0; i < size; i++) acc[i] = (acc[i] as number) + w * (buffer[i] as number);
      io.emit("adapter");
    }
  } finally {
    await pending.catch(() => {});
  }
  const result = new Float32Array(job.result);
  job.tensors.forEach((t, i) => {
    const from = local[i] as number;
    for (let k = 0; k < t.numel; k++) result[t.offset + k] = acc[from + k] as number;
  });
  return { bytesRead, aborted: false };
}

serveRequests<LinearJob, LinearOutcome, "adapter">(run);
