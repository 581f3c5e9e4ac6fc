import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Starts a worker from a module beside the caller. Built code has the `.js` file; when running the
 * TypeScript sources (tests), only the `.ts` file exists. Node 20 ignores `--import tsx` in a
 * worker's execArgv, so the worker boots from a small script that loads the module through tsx.
 */
export function startWorker(jsUrl: URL, options: WorkerOptions = {}): Worker {
  if (existsSync(fileURLToPath(jsUrl))) return new Worker(jsUrl, options);
  const tsUrl = new URL(jsUrl.href.replace(/\.js$/, ".ts"));
  const boot = `import("tsx/esm/api").then((api) => api.tsImport(${JSON.stringify(tsUrl.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(boot, { ...options, eval: true });
}
