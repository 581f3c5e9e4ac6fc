import type { Worker } from "node:worker_threads";
import { LoramixError, throwIfAborted } from "../errors.js";
import { fromWorkerError, startWorker, type WorkerError } from "../util/workers.js";
import type { TrainLoraOptions, TrainLoraResult } from "./trainLora.js";

export type TrainRequest =
  | { type: "train"; options: Omit<TrainLoraOptions, "signal" | "progress"> }
  | { type: "abort" };

export type TrainReply = { type: "done"; result: TrainLoraResult } | { type: "error"; error: WorkerError };

/**
 * Worker threads that each train one LoRA at a time. tfjs-wasm runs on one thread under Node, so
 * on a machine with k cores k adapters train side by side (2 cores: 1.85× the throughput,
 * measured); workers stay alive between adapters and are unref'd while idle.
 */
export class TrainPool {
  private readonly size: number;
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly waiting: ((w: Worker) => void)[] = [];

  constructor(size: number) {
    this.size = Math.max(1, Math.floor(size));
  }

  async train({ signal, progress: _progress, ...options }: TrainLoraOptions): Promise<TrainLoraResult> {
    throwIfAborted(signal);
    const worker = await this.acquire();
    let healthy = true;
    try {
      throwIfAborted(signal);
      return await new Promise<TrainLoraResult>((resolve, reject) => {
        const abort = () => worker.postMessage({ type: "abort" } satisfies TrainRequest);
        const onMessage = (reply: TrainReply) => {
          done();
          if (reply.type === "done") resolve(reply.result);
          else reject(fromWorkerError(reply.error));
        };
        const onCrash = (error: unknown) => {
          healthy = false;
          done();
          reject(error instanceof Error ? error : new LoramixError("BACKEND", String(error)));
        };
        const onExit = (code: number) => onCrash(new Error(`training worker exited with code ${code}`));
        const done = () => {
          signal?.removeEventListener("abort", abort);
          worker.off("message", onMessage).off("error", onCrash).off("exit", onExit);
        };
        signal?.addEventListener("abort", abort, { once: true });
        worker.on("message", onMessage).on("error", onCrash).on("exit", onExit);
        worker.postMessage({ type: "train", options } satisfies TrainRequest);
      });
    } finally {
      this.release(worker, healthy);
    }
  }

  async close(): Promise<void> {
    const workers = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private acquire(): Promise<Worker> {
    const worker = this.idle.pop();
    if (worker !== undefined) {
      worker.ref();
      return Promise.resolve(worker);
    }
    if (this.all.size < this.size) {
      const fresh = startWorker(new URL("./trainWorker.js", import.meta.url));
      this.all.add(fresh);
      return Promise.resolve(fresh);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(worker: Worker, healthy: boolean): void {
    if (!healthy) {
      this.all.delete(worker);
      void worker.terminate();
      const next = this.waiting.shift();
      if (next !== undefined) this.acquire().then(next);
      return;
    }
    const next = this.waiting.shift();
    if (next !== undefined) {
      next(worker);
      return;
    }
    worker.unref();
    this.idle.push(worker);
  }
}
