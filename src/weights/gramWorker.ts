import { parentPort, workerData } from "node:worker_threads";
import { accumulateGram } from "./gramKernel.js";

/** Worker side of `gramOfAdapters`: accumulates its tile rows of x·xᵀ over the shared blocks. */
interface GramWorkerData {
  buffers: SharedArrayBuffer[];
  rows: number;
  stride: number;
  tileRows: number[];
}

const data = workerData as GramWorkerData;
const views = data.buffers.map((b) => new Float32Array(b));
const g = new Float64Array(data.rows * data.rows);

parentPort?.on("message", (message: { buffer: number; width: number } | "finish") => {
  if (message === "finish") {
    parentPort?.postMessage(g, [g.buffer]);
    return;
  }
  const x = views[message.buffer];
  if (!x) throw new Error(`gram worker: no buffer ${message.buffer}`);
  accumulateGram(x, data.rows, data.stride, message.width, g, data.tileRows);
  parentPort?.postMessage("done");
});
