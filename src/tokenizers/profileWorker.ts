import { serveRequests } from "../util/workers.js";
import { HistogramCounter, type SparseHistogram } from "./histogram.js";
import { loadTokenizer } from "./load.js";
import type { CountRequest } from "./pool.js";

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

serveRequests<CountRequest, SparseHistogram>(async (request, io) => {
  const counter = await counterFor(request.spec);
  const h = counter.count(request.texts, request.bos);
  io.transfer([h.ids.buffer as ArrayBuffer, h.counts.buffer as ArrayBuffer]);
  return { ids: h.ids, counts: h.counts, nTokens: h.nTokens };
});
