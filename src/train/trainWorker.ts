import type { ProgressEvent } from "../util/progress.js";
import { serveRequests } from "../util/workers.js";
import { type FinetuneResult, finetuneLora } from "./finetuneLora.js";
import { type TrainLoraResult, trainLora } from "./trainLora.js";
import type { TrainRequest } from "./trainPool.js";

/** Worker side of TrainPool: one training at a time; an "abort" request stops it between steps. */
let running: AbortController | undefined;
serveRequests<TrainRequest, TrainLoraResult | FinetuneResult | null, ProgressEvent>(async (request, io) => {
  if (request.type === "abort") {
    running?.abort();
    return null;
  }
  running = new AbortController();
  try {
    if (request.type === "train") return await trainLora({ ...request.options, signal: running.signal });
    const result = await finetuneLora({ ...request.options, signal: running.signal, progress: io.emit });
    io.transfer(result.tensors.map((t) => t.data.buffer as ArrayBuffer));
    return result;
  } finally {
    running = undefined;
  }
});
