import { LoramixError, throwIfAborted } from "../errors.js";

/**
 * Tokens a server holds for the requests in flight, handed out first come, first served. A
 * request waits until its tokens fit beside the others'; one larger than the whole budget takes
 * all of it, alone.
 */
export class TokenBudget {
  private used = 0;
  private readonly queue: { need: number; go: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Waits for `need` tokens (capped at the capacity); returns what must be given back. */
  async take(need: number, signal?: AbortSignal): Promise<number> {
    throwIfAborted(signal);
    const n = Math.min(need, this.capacity);
    if (this.queue.length === 0 && this.used + n <= this.capacity) {
      this.used += n;
      return n;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.queue.splice(this.queue.indexOf(entry), 1);
        reject(new LoramixError("ABORTED", "interrupted"));
        this.admit();
      };
      const entry = {
        need: n,
        go: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      this.queue.push(entry);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    return n;
  }

  give(n: number): void {
    this.used -= n;
    this.admit();
  }

  private admit(): void {
    for (;;) {
      const head = this.queue[0];
      if (head === undefined || this.used + head.need > this.capacity) return;
      this.queue.shift();
      this.used += head.need;
      head.go();
    }
  }
}
