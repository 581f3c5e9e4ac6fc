import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { inputError, throwIfAborted } from "../errors.js";
import { ADAPTER_CONFIG } from "../formats/fileNames.js";
import type { ProgressSink } from "../util/progress.js";
import { addEntry } from "./add.js";
import type { Bank } from "./store.js";

export interface ImportOptions {
  /** Overwrite entries that already exist; otherwise they are skipped, so a rerun continues an import. */
  replace?: boolean;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface ImportResult {
  /** Ids added (or replaced), in order. */
  added: string[];
  /** Ids already in the bank, left as they were. */
  existing: string[];
  /** Ids added as dataset-only because no adapter was found for them. */
  withoutAdapter: string[];
}

/**
 * Adds every Super-NaturalInstructions task file (`taskNNN_name.json`) of `tasks` as an entry
 * named after the task, with its categories. With `adapters`, each task's adapter is looked up at
 * `<adapters>/<task name>` or `<adapters>/taskNNN`; tasks without one become dataset-only entries.
 * Each entry is its own transaction, so an interrupted import keeps what it finished.
 */
export async function importSni(
  bank: Bank,
  {
    tasks,
    adapters,
    replace = false,
    signal,
    progress,
  }: ImportOptions & { tasks: string; adapters?: string },
): Promise<ImportResult> {
  const tasksDir = resolve(tasks);
  if (!existsSync(tasksDir)) throw inputError(tasksDir, "task directory not found");
  const adaptersDir = adapters === undefined ? undefined : resolve(adapters);
  if (adaptersDir !== undefined && !existsSync(adaptersDir))
    throw inputError(adaptersDir, "adapter directory not found");
  const files = (await readdir(tasksDir, { withFileTypes: true }))
    .filter((f) => (f.isFile() || f.isSymbolicLink()) && /^task\d+_.*\.json$/.test(f.name))
    .map((f) => f.name)
    .sort();
  if (files.length === 0)
    throw inputError(tasksDir, "no Super-NI task files (taskNNN_name.json) in this directory");

  const result: ImportResult = { added: [], existing: [], withoutAdapter: [] };
  for (const [i, file] of files.entries()) {
    throwIfAborted(signal);
    const name = basename(file, ".json");
    if (!replace && bank.entry(name)) {
      result.existing.push(name);
    } else {
      const adapter = adaptersDir === undefined ? undefined : findTaskAdapter(adaptersDir, name);
      if (adaptersDir !== undefined && adapter === undefined) result.withoutAdapter.push(name);
      await addEntry(bank, {
        id: name,
        data: join(tasksDir, file),
        ...(adapter ? { adapter } : {}),
        metadata: { origin: "super-natural-instructions", task: name },
        dataOptions: { format: "sni" },
        replace,
        signal,
      });
      result.added.push(name);
    }
    progress?.({ phase: "import", done: i + 1, total: files.length, unit: "tasks" });
  }
  return result;
}

function findTaskAdapter(dir: string, task: string): string | undefined {
  const number = /^(task\d+)/.exec(task)?.[1];
  for (const candidate of [task, number]) {
    if (candidate === undefined) continue;
    const path = join(dir, candidate);
    if (existsSync(join(path, ADAPTER_CONFIG))) return path;
  }
  return undefined;
}
