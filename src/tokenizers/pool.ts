import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { fromWorkerError, startWorker, type WorkerError } from "../util/workers.js";
import type { SparseHistogram } from "./histogram.js";

/** A batch of texts for a worker to tokenize and count. */
export interface CountRequest {
  id: number;
  spec: string;
  texts: string[];
  bos: boolean;
}

export type CountReply =
  | { id: number; ids: Uint32Array; counts: Float64Array; nTokens: number; error?: undefined }
  | { id: number; error: WorkerError };

interface Pending {
  resolve: (h: SparseHistogram) => void;
  reject: (error: unknown) => void;
  slot: Slot;
}

interface Slot {
  worker: Worker;
  inFlight: number;
}

/**
 * Worker threads that tokenize batches of texts and answer with sparse histograms (a few KB)
 * instead of token arrays. Workers stay alive between calls, so each loads a tokenizer and warms
 * its chunk cache once per process; they are unref'd while idle, so they never keep the process up.
 */
export class TokenizerPool {
  private size: number;
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(size: number) {
    this.size = Math.max(1, Math.floor(size));
  }

  /** Allows up to `threads` workers; they start on demand. */
  grow(threads: number): void {
    this.size = Math.max(this.size, Math.floor(threads));
  }

  /** Sends a batch to the least busy of the first `threads` workers (default: all). */
  count(spec: string, texts: string[], bos: boolean, threads = this.size): Promise<SparseHistogram> {
    const slot = this.pickSlot(Math.max(1, Math.min(threads, this.size)));
    const id = this.nextId++;
    return new Promise<SparseHistogram>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      if (slot.inFlight++ === 0) slot.worker.ref();
      const request: CountRequest = { id, spec, texts, bos };
      slot.worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private pickSlot(limit: number): Slot {
    let best: Slot | undefined;
    for (const s of this.slots.slice(0, limit))
      if (best === undefined || s.inFlight < best.inFlight) best = s;
    if (best !== undefined && (best.inFlight === 0 || this.slots.length >= limit)) return best;
    const slot = this.spawn();
    this.slots.push(slot);
    return slot;
  }

  private spawn(): Slot {
    const worker = startWorker(new URL("./profileWorker.js", import.meta.url));
    const slot: Slot = { worker, inFlight: 0 };
    worker.unref();
    worker.on("message", (reply: CountReply) => {
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      this.pending.delete(reply.id);
      this.settled(slot);
      if (reply.error !== undefined) {
        p.reject(fromWorkerError(reply.error));
      } else {
        p.resolve({ ids: reply.ids, counts: reply.counts, nTokens: reply.nTokens });
      }
    });
    // A crashed worker takes its batches with it: fail them and let the next call start a new one.
    const fail = (error: unknown) => {
      const index = this.slots.indexOf(slot);
      if (index >= 0) this.slots.splice(index, 1);
      for (const [id, p] of this.pending) {
        if (p.slot !== slot) continue;
        this.pending.delete(id);
        p.reject(error);
      }
      slot.inFlight = 0;
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`tokenizer worker exited with code ${code}`)));
    return slot;
  }

  private settled(slot: Slot): void {
    if (--slot.inFlight === 0) slot.worker.unref();
  }
}

let shared: TokenizerPool | undefined;

/** The process-wide pool; it grows when a caller asks for more threads, and never shrinks. */
export function sharedPool(threads: number = availableParallelism()): TokenizerPool {
  shared ??= new TokenizerPool(threads);
  shared.grow(threads);
  return shared;
}
