import { workerData } from "node:worker_threads";
import { serveRequests } from "../util/workers.js";
import { GramAccumulator } from "./gramKernel.js";

/** Worker side of `gramOfAdapters`: accumulates its tile rows of x·xᵀ over the shared blocks. */
export interface GramWorkerData {
  buffers: SharedArrayBuffer[];
  rows: number;
  stride: number;
  tileRows: number[];
}

/** Add one shared block (by buffer index), or "finish": the accumulated sums, moved out. */
export type GramRequest = { buffer: number; width: number } | "finish";

const data = workerData as GramWorkerData;
const views = data.buffers.map((b) => new Float32Array(b));
const gram = new GramAccumulator(data.rows, data.tileRows);

serveRequests<GramRequest, Float64Array | null>((request, io) => {
  if (request === "finish") {
    const g = gram.result();
    io.transfer([g.buffer]);
    return g;
  }
  const x = views[request.buffer];
  if (!x) throw new Error(`gram worker: no buffer ${request.buffer}`);
  gram.add(x, data.stride, request.width);
  return null;
});
