import { serveRequests } from "../util/workers.js";
import { type TrainLoraResult, trainLora } from "./trainLora.js";
import type { TrainRequest } from "./trainPool.js";

/** Worker side of TrainPool: one training at a time; an "abort" request stops it between steps. */
let running: AbortController | undefined;
serveRequests<TrainRequest, TrainLoraResult | null>(async (request) => {
  if (request.type === "abort") {
    running?.abort();
    return null;
  }
  running = new AbortController();
  try {
    return await trainLora({ ...request.options, signal: running.signal });
  } finally {
    running = undefined;
  }
});
