import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { inputError, throwIfAborted } from "../errors.js";
import { ADAPTER_CONFIG } from "../formats/fileNames.js";
import { addEntry } from "./add.js";
import type { ImportOptions, ImportResult } from "./importSni.js";
import type { Bank } from "./store.js";

/** Lots-of-LoRAs adapter repos end in the task number: `Mistral-7B-Instruct-v0.2-4b-r16-task022`. */
const ADAPTER_REPO = /-task(\d+)$/;
/** Dataset repos are Super-NI task names: `task022_cosmosqa_passage_inappropriate_binary`. */
const DATASET_REPO = /^task(\d+)_[A-Za-z0-9_.-]+$/;
/** Hugging Face cache folders: `models--<owner>--<name>`, `datasets--<owner>--<name>`. */
const HF_CACHE_REPO = /^(models|datasets)--[^-][^/]*?--(.+)$/;
/** Deep enough for `<root>/hub/models--o--n/snapshots/<rev>` and `<root>/<owner>/<repo>`; a crafted tree can't recurse forever. */
const MAX_DEPTH = 4;

interface Found {
  /** Task number as written in the repo name, leading zeros dropped for matching. */
  task: number;
  name: string;
  path: string;
}

export interface LolImportResult extends ImportResult {
  /** Adapters without a dataset of the same task (not importable: a bank entry needs its data). */
  adaptersWithoutData: string[];
  /** Second copies of a task (e.g. in both layouts); the first found, in sorted path order, is used. */
  duplicates: string[];
}

/**
 * Imports local snapshots of the Lots-of-LoRAs hub repos found under `root`: plain repo folders
 * (optionally under an owner folder) and the Hugging Face cache layout. Adapters and datasets are
 * matched by task number; the entry id is the dataset's task name.
 */
export async function importLol(
  bank: Bank,
  { root, replace = false, signal, progress }: ImportOptions & { root: string },
): Promise<LolImportResult> {
  const top = resolve(root);
  if (!existsSync(top) || !statSync(top).isDirectory()) throw inputError(top, "not a directory");
  const adapters: Found[] = [];
  const datasets: Found[] = [];
  await scan(top, 0, adapters, datasets);
  if (datasets.length === 0) {
    throw inputError(
      top,
      "no Lots-of-LoRAs dataset repos (taskNNN_name) found, neither as folders nor in a HF cache",
    );
  }

  const duplicates: string[] = [];
  const byTask = <T extends Found>(list: T[]) => {
    const map = new Map<number, T>();
    for (const f of [...list].sort((a, b) => (a.path < b.path ? -1 : 1))) {
      if (map.has(f.task)) duplicates.push(f.path);
      else map.set(f.task, f);
    }
    return map;
  };
  const adapterOf = byTask(adapters);
  const dataOf = byTask(datasets);
  const tasks = [...dataOf.keys()].sort((a, b) => a - b);

  const result: LolImportResult = {
    added: [],
    existing: [],
    withoutAdapter: [],
    adaptersWithoutData: [...adapterOf.values()].filter((a) => !dataOf.has(a.task)).map((a) => a.path),
    duplicates,
  };
  for (const [i, task] of tasks.entries()) {
    throwIfAborted(signal);
    const data = dataOf.get(task)!;
    const adapter = adapterOf.get(task);
    if (!replace && bank.entry(data.name)) {
      result.existing.push(data.name);
    } else {
      if (!adapter) result.withoutAdapter.push(data.name);
      await addEntry(bank, {
        id: data.name,
        data: data.path,
        ...(adapter ? { adapter: adapter.path } : {}),
        metadata: {
          origin: "lots-of-loras",
          task: data.name,
          ...(adapter ? { adapterRepo: adapter.name } : {}),
        },
        replace,
        signal,
      });
      result.added.push(data.name);
    }
    progress?.({ phase: "import", done: i + 1, total: tasks.length, unit: "tasks" });
  }
  return result;
}

async function scan(dir: string, depth: number, adapters: Found[], datasets: Found[]): Promise<void> {
  for (const item of await readdir(dir, { withFileTypes: true })) {
    if (item.name.startsWith(".")) continue;
    const path = join(dir, item.name);
    if (!item.isDirectory() && !(item.isSymbolicLink() && isDir(path))) continue;
    const cached = HF_CACHE_REPO.exec(item.name);
    if (cached) {
      const snapshot = cacheSnapshot(path);
      if (snapshot) classify(cached[2]!, snapshot, adapters, datasets, cached[1] === "models");
      continue;
    }
    if (classify(item.name, path, adapters, datasets)) continue;
    if (depth < MAX_DEPTH) await scan(path, depth + 1, adapters, datasets);
  }
}

/** Records a repo folder; false when the name is neither an adapter nor a dataset repo. */
function classify(
  name: string,
  path: string,
  adapters: Found[],
  datasets: Found[],
  isModel?: boolean,
): boolean {
  const adapter = ADAPTER_REPO.exec(name);
  if (adapter && isModel !== false && existsSync(join(path, ADAPTER_CONFIG))) {
    adapters.push({ task: Number(adapter[1]), name, path });
    return true;
  }
  const dataset = DATASET_REPO.exec(name);
  if (dataset && isModel !== true) {
    datasets.push({ task: Number(dataset[1]), name, path });
    return true;
  }
  return false;
}

/** The snapshot `refs/main` points at, else the only or most recently modified one. */
function cacheSnapshot(repo: string): string | undefined {
  const snapshots = join(repo, "snapshots");
  if (!isDir(snapshots)) return undefined;
  const ref = join(repo, "refs", "main");
  if (existsSync(ref)) {
    const rev = readFileSync(ref, "utf8").trim();
    if (/^[0-9a-f]{7,64}$/i.test(rev) && isDir(join(snapshots, rev))) return join(snapshots, rev);
  }
  let best: { path: string; mtime: number } | undefined;
  for (const rev of readdirSync(snapshots)) {
    const path = join(snapshots, rev);
    if (rev.startsWith(".") || !isDir(path)) continue;
    const mtime = statSync(path).mtimeMs;
    if (!best || mtime > best.mtime) best = { path, mtime };
  }
  return best?.path;
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
