import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Starts a worker from a module beside the caller. Built code has the `.js` file; when running the
 * TypeScript sources (tests), only the `.ts` file exists and it is loaded through tsx.
 */
export function startWorker(jsUrl: URL, options: WorkerOptions = {}): Worker {
  if (existsSync(fileURLToPath(jsUrl))) return new Worker(jsUrl, options);
  const tsUrl = new URL(jsUrl.href.replace(/\.js$/, ".ts"));
  return new Worker(tsUrl, { ...options, execArgv: [...(options.execArgv ?? []), "--import", "tsx"] });
}
