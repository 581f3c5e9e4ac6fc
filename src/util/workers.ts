import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parentPort, type Transferable, Worker, type WorkerOptions } from "node:worker_threads";
import { type ErrorCode, LoramixError } from "../errors.js";

/** An error as it crosses a thread boundary (structured clone drops the class and its code). */
export interface WorkerError {
  /** The class name (TypeError, RangeError ...): some callers tell a library's own errors from data tripping it. */
  name: string;
  message: string;
  code: ErrorCode | undefined;
  stack: string | undefined;
}

export function toWorkerError(error: unknown): WorkerError {
  const e = error instanceof Error ? error : new Error(String(error));
  return {
    name: e.name,
    message: e.message,
    code: error instanceof LoramixError ? error.code : undefined,
    stack: e.stack,
  };
}

/** A user's error comes back as the same LoramixError; a bug keeps the worker's stack. */
export function fromWorkerError({ name, message, code, stack }: WorkerError): Error {
  if (code !== undefined) return new LoramixError(code, message);
  const error = new Error(message);
  error.name = name;
  if (stack !== undefined) error.stack = stack;
  return error;
}

/**
 * The one protocol every loramix worker speaks: numbered requests in; for each, any number of
 * events (progress), then exactly one result or one error. Several requests may be in flight; a
 * worker answers each as soon as its handler settles.
 */
type Envelope<Q> = { id: number; request: Q };
type Reply<R, E> = { id: number; event: E } | { id: number; result: R } | { id: number; error: WorkerError };

/** What a request handler may do besides returning its result. */
export interface RequestIo<E> {
  emit(event: E): void;
  /** Buffers of the result to move instead of copy. */
  transfer(list: Transferable[]): void;
}

/** Worker side: answers every request with `handle`; its errors travel as WorkerError. */
export function serveRequests<Q, R, E = never>(
  handle: (request: Q, io: RequestIo<E>) => Promise<R> | R,
): void {
  const port = parentPort;
  if (port === null) throw new Error("serveRequests must run in a worker thread");
  port.on("message", async ({ id, request }: Envelope<Q>) => {
    let moved: Transferable[] = [];
    const io: RequestIo<E> = {
      emit: (event) => port.postMessage({ id, event } satisfies Reply<R, E>),
      transfer: (list) => {
        moved = list;
      },
    };
    try {
      const result = await handle(request, io);
      port.postMessage({ id, result } satisfies Reply<R, E>, moved);
    } catch (error) {
      port.postMessage({ id, error: toWorkerError(error) } satisfies Reply<R, E>);
    }
  });
}

/**
 * Main side of the protocol for one worker. The worker is ref'd only while a request is in flight,
 * so an idle worker kept for reuse never holds the process open; a crash or exit fails every
 * request in flight and marks the channel dead.
 */
export class WorkerChannel<Q, R, E = never> {
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (r: R) => void; reject: (e: unknown) => void; onEvent?: (e: E) => void }
  >();
  private crashed: unknown;

  constructor(readonly worker: Worker) {
    worker.unref();
    worker.on("message", (reply: Reply<R, E>) => {
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      if ("event" in reply) {
        p.onEvent?.(reply.event);
        return;
      }
      this.settle(reply.id);
      if ("error" in reply) p.reject(fromWorkerError(reply.error));
      else p.resolve(reply.result);
    });
    const fail = (error: unknown) => {
      this.crashed ??= error;
      for (const [id, p] of this.pending) {
        this.settle(id);
        p.reject(error);
      }
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`worker exited with code ${code}`)));
  }

  /** Requests in flight. */
  get busy(): number {
    return this.pending.size;
  }

  /** False once the worker crashed or exited: start another. */
  get alive(): boolean {
    return this.crashed === undefined;
  }

  request(
    request: Q,
    { transfer, onEvent }: { transfer?: Transferable[]; onEvent?: (event: E) => void } = {},
  ): Promise<R> {
    if (this.crashed !== undefined) return Promise.reject(this.crashed);
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ id, request } satisfies Envelope<Q>, transfer);
    });
  }

  async terminate(): Promise<void> {
    this.crashed ??= new Error("worker terminated");
    await this.worker.terminate();
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }
}

/**
 * Starts a worker from a module beside the caller. Built code has the `.js` file; when running the
 * TypeScript sources (tests), only the `.ts` file exists. Node 20 ignores `--import tsx` in a
 * worker's execArgv, so the worker boots from a small script that loads the module through tsx.
 */
export function startWorker(jsUrl: URL, options: WorkerOptions = {}): Worker {
  if (existsSync(fileURLToPath(jsUrl))) return new Worker(jsUrl, options);
  const tsUrl = new URL(jsUrl.href.replace(/\.js$/, ".ts"));
  // Resolved here, not in the worker: an eval'd worker resolves bare names from the current folder.
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(tsx)}).then((api) => api.tsImport(${JSON.stringify(tsUrl.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(boot, { ...options, eval: true });
}
