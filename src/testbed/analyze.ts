import { readdir, readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { parseJsonLenient } from "../datasets/json.js";
import { parseSniTask } from "../datasets/sni.js";
import { inputError, throwIfAborted } from "../errors.js";
import type { ProgressSink } from "../util/progress.js";

/** One task's answers, as far as choosing a testbed needs them. */
export interface TaskAnswers {
  /** File name without `.json`, e.g. `task1385_anli_r1_entailment`. */
  task: string;
  number: number;
  instances: number;
  /** Distinct normalised first outputs. */
  distinct: number;
  /** The most frequent normalised first outputs, by decreasing count (at most `TOP_OUTPUTS`). */
  top: { output: string; share: number }[];
  /** Mean length of the first output in words. */
  meanOutputWords: number;
  /** Every first output is an integer. */
  numeric: boolean;
  categories: string[];
}

const TOP_OUTPUTS = 8;

/**
 * The answer as a label: lowercase, punctuation and surrounding space dropped, inner space
 * collapsed, so "Yes." and "yes" are one label. Only used to group tasks, never to score them.
 */
export function labelOf(output: string): string {
  return output
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
}

export function taskNumber(task: string): number {
  const m = /^task(\d+)/.exec(task);
  return m ? Number(m[1]) : Number.NaN;
}

/** Answer statistics of one Super-NI task file (first output of every instance). */
export async function analyzeTask(file: string): Promise<TaskAnswers> {
  const task = parseSniTask(file, parseJsonLenient(file, await readFile(file, "utf8")));
  const counts = new Map<string, number>();
  let words = 0;
  let numeric = task.instances.length > 0;
  for (const inst of task.instances) {
    const first = inst.output[0] as string;
    const label = labelOf(first);
    counts.set(label, (counts.get(label) ?? 0) + 1);
    words += first.trim() === "" ? 0 : first.trim().split(/\s+/).length;
    if (!/^-?\d+$/.test(first.trim())) numeric = false;
  }
  const n = task.instances.length;
  const top = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, TOP_OUTPUTS)
    .map(([output, c]) => ({ output, share: n > 0 ? c / n : 0 }));
  const name = basename(file, ".json");
  return {
    task: name,
    number: taskNumber(name),
    instances: n,
    distinct: counts.size,
    top,
    meanOutputWords: n > 0 ? words / n : 0,
    numeric,
    categories: (task.metadata.categories as string[] | undefined) ?? [],
  };
}

/** `analyzeTask` over every `taskNNN_*.json` of a directory, by task number. */
export async function analyzeSniDir(
  dir: string,
  { signal, progress }: { signal?: AbortSignal; progress?: ProgressSink } = {},
): Promise<TaskAnswers[]> {
  const abs = resolve(dir);
  const names = (await readdir(abs).catch(() => [] as string[])).filter((f) => /^task\d+_.*\.json$/.test(f));
  if (names.length === 0)
    throw inputError(abs, "no Super-NI task files (taskNNN_name.json) in this directory");
  names.sort((a, b) => taskNumber(a) - taskNumber(b));
  const out: TaskAnswers[] = [];
  for (const [i, f] of names.entries()) {
    throwIfAborted(signal);
    out.push(await analyzeTask(join(abs, f)));
    progress?.({ phase: "analyze", done: i + 1, total: names.length, unit: "tasks" });
  }
  return out;
}
