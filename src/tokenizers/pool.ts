import { availableParallelism } from "node:os";
import { startWorker, WorkerChannel } from "../util/workers.js";
import type { SparseHistogram } from "./histogram.js";

/** A batch of texts for a worker to tokenize and count. */
export interface CountRequest {
  spec: string;
  texts: string[];
  bos: boolean;
}

type Slot = WorkerChannel<CountRequest, SparseHistogram>;

/**
 * Worker threads that tokenize batches of texts and answer with sparse histograms (a few KB)
 * instead of token arrays. Workers stay alive between calls, so each loads a tokenizer and warms
 * its chunk cache once per process; they are unref'd while idle, so they never keep the process up.
 */
export class TokenizerPool {
  private size: number;
  private readonly slots: Slot[] = [];

  constructor(size: number) {
    this.size = Math.max(1, Math.floor(size));
  }

  /** Allows up to `threads` workers; they start on demand. */
  grow(threads: number): void {
    this.size = Math.max(this.size, Math.floor(threads));
  }

  /** Sends a batch to the least busy of the first `threads` workers (default: all). */
  count(spec: string, texts: string[], bos: boolean, threads = this.size): Promise<SparseHistogram> {
    return this.pickSlot(Math.max(1, Math.min(threads, this.size))).request({ spec, texts, bos });
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.terminate()));
  }

  private pickSlot(limit: number): Slot {
    // A crashed worker took its batches with it (they failed); the next call starts a new one.
    for (let i = this.slots.length - 1; i >= 0; i--) if (!this.slots[i]?.alive) this.slots.splice(i, 1);
    let best: Slot | undefined;
    for (const s of this.slots.slice(0, limit)) if (best === undefined || s.busy < best.busy) best = s;
    if (best !== undefined && (best.busy === 0 || this.slots.length >= limit)) return best;
    const slot: Slot = new WorkerChannel(startWorker(new URL("./profileWorker.js", import.meta.url)));
    this.slots.push(slot);
    return slot;
  }
}

let shared: TokenizerPool | undefined;

/** The process-wide pool; it grows when a caller asks for more threads, and never shrinks. */
export function sharedPool(threads: number = availableParallelism()): TokenizerPool {
  shared ??= new TokenizerPool(threads);
  shared.grow(threads);
  return shared;
}
