import { parentPort } from "node:worker_threads";
import { toWorkerError } from "../util/workers.js";
import { trainLora } from "./trainLora.js";
import type { TrainReply, TrainRequest } from "./trainPool.js";

/** Worker side of TrainPool: one training at a time; an "abort" message stops it between steps. */
const port = parentPort;
if (port === null) throw new Error("trainWorker must run in a worker thread");
let running: AbortController | undefined;
port.on("message", async (request: TrainRequest) => {
  if (request.type === "abort") {
    running?.abort();
    return;
  }
  running = new AbortController();
  try {
    const result = await trainLora({ ...request.options, signal: running.signal });
    port.postMessage({ type: "done", result } satisfies TrainReply);
  } catch (error) {
    port.postMessage({ type: "error", error: toWorkerError(error) } satisfies TrainReply);
  } finally {
    running = undefined;
  }
});
