import { parentPort } from "node:worker_threads";
import { toWorkerError } from "../util/workers.js";
import { HistogramCounter } from "./histogram.js";
import { loadTokenizer } from "./load.js";
import type { CountReply, CountRequest } from "./pool.js";

/** Worker side of the pool: one histogram counter per tokenizer spec, kept for the worker's life. */
const counters = new Map<string, Promise<HistogramCounter>>();

function counterFor(spec: string): Promise<HistogramCounter> {
  let counter = counters.get(spec);
  if (counter === undefined) {
    counter = loadTokenizer(spec).then((t) => new HistogramCounter(t));
    // A failed load (missing file) must not poison later requests once the user fixes it.
    counter.catch(() => counters.delete(spec));
    counters.set(spec, counter);
  }
  return counter;
}

const port = parentPort;
if (port === null) throw new Error("profileWorker must run in a worker thread");
port.on("message", async (request: CountRequest) => {
  try {
    const counter = await counterFor(request.spec);
    const h = counter.count(request.texts, request.bos);
    const reply: CountReply = { id: request.id, ids: h.ids, counts: h.counts, nTokens: h.nTokens };
    port.postMessage(reply, [h.ids.buffer as ArrayBuffer, h.counts.buffer as ArrayBuffer]);
  } catch (error) {
    const reply: CountReply = { id: request.id, error: toWorkerError(error) };
    port.postMessage(reply);
  }
});
