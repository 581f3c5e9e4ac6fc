import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";
import { type ErrorCode, LoramixError } from "../errors.js";

/** An error as it crosses a thread boundary (structured clone drops the class and its code). */
export interface WorkerError {
  message: string;
  code: ErrorCode | undefined;
  stack: string | undefined;
}

export function toWorkerError(error: unknown): WorkerError {
  const e = error instanceof Error ? error : new Error(String(error));
  return { message: e.message, code: error instanceof LoramixError ? error.code : undefined, stack: e.stack };
}

/** A user's error comes back as the same LoramixError; a bug keeps the worker's stack. */
export function fromWorkerError({ message, code, stack }: WorkerError): Error {
  if (code !== undefined) return new LoramixError(code, message);
  const error = new Error(message);
  if (stack !== undefined) error.stack = stack;
  return error;
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
