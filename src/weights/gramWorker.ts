import { parentPort, workerData } from "node:worker_threads";
import { GramAccumulator } from "./gramKernel.js";

/** Worker side of `gramOfAdapters`: accumulates its tile rows of x·xᵀ over the shared blocks. */
interface GramWorkerData {
  buffers: SharedArrayBuffer[];
  rows: number;
  stride: number;
  tileRows: number[];
}

const data = workerData as GramWorkerData;
const views = data.buffers.map((b) => new Float32Array(b));
const gram = new GramAccumulator(data.rows, data.tileRows);

parentPort?.on("message", (message: { buffer: number; width: number } | "finish") => {
  if (message === "finish") {
    const g = gram.result();
    parentPort?.postMessage(g, [g.buffer]);
    return;
  }
  const x = views[message.buffer];
  if (!x) throw new Error(`gram worker: no buffer ${message.buffer}`);
  gram.add(x, data.stride, message.width);
  parentPort?.postMessage("done");
});
