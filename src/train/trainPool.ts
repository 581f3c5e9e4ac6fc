import { throwIfAborted } from "../errors.js";
import type { ProgressEvent } from "../util/progress.js";
import { startWorker, WorkerChannel } from "../util/workers.js";
import type { FinetuneOptions, FinetuneResult } from "./finetuneLora.js";
import type { TrainLoraOptions, TrainLoraResult } from "./trainLora.js";

export type TrainRequest =
  | { type: "train"; options: Omit<TrainLoraOptions, "signal" | "progress"> }
  | { type: "finetune"; options: Omit<FinetuneOptions, "signal" | "progress"> }
  | { type: "abort" };

type Channel = WorkerChannel<TrainRequest, TrainLoraResult | FinetuneResult | null, ProgressEvent>;

/**
 * Worker threads that each train one LoRA at a time. tfjs-wasm runs on one thread under Node, so
 * on a machine with k cores k adapters train side by side (2 cores: 1.85× the throughput,
 * measured); workers stay alive between adapters and are unref'd while idle.
 */
export class TrainPool {
  private readonly size: number;
  private readonly idle: Channel[] = [];
  private readonly all = new Set<Channel>();
  private readonly waiting: ((w: Channel) => void)[] = [];

  constructor(size: number) {
    this.size = Math.max(1, Math.floor(size));
  }

  async train({ signal, progress: _progress, ...options }: TrainLoraOptions): Promise<TrainLoraResult> {
    return (await this.run({ type: "train", options }, signal, undefined)) as TrainLoraResult;
  }

  /**
   * `finetuneLora` on a worker, its steps reported to `progress`: a model too large for the
   * trainer's WebAssembly heap then fails that worker, not the process.
   */
  async finetune({ signal, progress, ...options }: FinetuneOptions): Promise<FinetuneResult> {
    return (await this.run({ type: "finetune", options }, signal, progress)) as FinetuneResult;
  }

  private async run(
    request: Exclude<TrainRequest, { type: "abort" }>,
    signal: AbortSignal | undefined,
    progress: ((e: ProgressEvent) => void) | undefined,
  ): Promise<TrainLoraResult | FinetuneResult | null> {
    throwIfAborted(signal);
    const channel = await this.acquire();
    const abort = () => void channel.request({ type: "abort" }).catch(() => {});
    try {
      throwIfAborted(signal);
      signal?.addEventListener("abort", abort, { once: true });
      return await channel.request(request, progress ? { onEvent: progress } : {});
    } finally {
      signal?.removeEventListener("abort", abort);
      this.release(channel);
    }
  }

  async close(): Promise<void> {
    const workers = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private acquire(): Promise<Channel> {
    const idle = this.idle.pop();
    if (idle !== undefined) return Promise.resolve(idle);
    if (this.all.size < this.size) {
      const fresh: Channel = new WorkerChannel(startWorker(new URL("./trainWorker.js", import.meta.url)));
      this.all.add(fresh);
      return Promise.resolve(fresh);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A crashed worker is dropped, and whoever waits gets a fresh one. */
  private release(channel: Channel): void {
    if (!channel.alive) {
      this.all.delete(channel);
      void channel.terminate();
      const next = this.waiting.shift();
      if (next !== undefined) this.acquire().then(next);
      return;
    }
    const next = this.waiting.shift();
    if (next !== undefined) next(channel);
    else this.idle.push(channel);
  }
}
