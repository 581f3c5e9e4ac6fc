import { rm } from "node:fs/promises";
import { join } from "node:path";
import { loadDataset } from "../datasets/load.js";
import { LoramixError, throwIfAborted } from "../errors.js";
import type { LlamaBackend } from "../eval/llamaBackend.js";
import { ci95, type Summary } from "../eval/metrics.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import { majorityScore } from "../testbed/majority.js";
import { evalRecords, scoreBackend } from "../testbed/references.js";
import type { ProgressSink } from "../util/progress.js";
import type { AdapterRows } from "./finetune.js";
import { type DemoSetup, targetRow } from "./setup.js";
import type { ScoreGrid, TaskScore } from "./tables.js";
import type { WeightRows } from "./weights.js";

export interface VariantScore extends TaskScore {
  rougeLCi: number;
  exactMatchCi: number;
  predictions: string[];
}

export interface TargetRow {
  task: string;
  family: string;
  /** Per variant: mean Rouge-L / EM over this task's records, their 95% half-widths, and the predictions. */
  scores: Record<string, VariantScore>;
  references: string[][];
  majorityAnswer: string;
}

/** A variant's scores on one task from the Rouge-L and EM summaries over its records. */
function variantScore(rougeL: Summary, exactMatch: Summary, predictions: string[]): VariantScore {
  return {
    rougeL: rougeL.mean,
    exactMatch: exactMatch.mean,
    rougeLCi: ci95(rougeL),
    exactMatchCi: ci95(exactMatch),
    predictions,
  };
}

/**
 * Each target's test records under the majority answer, the base model, its own adapter, every
 * mixed variant (mixed linearly into `tmp`, evaluated with llama.cpp, then removed) and every
 * variant of `trained` (an adapter directory per target). `grid` starts with one empty row per
 * variant to report and is filled here.
 */
export async function evaluateTargets(
  setup: DemoSetup,
  backend: LlamaBackend,
  weightRows: WeightRows,
  {
    mixed,
    trained = new Map(),
    grid,
    tmp,
    signal,
    progress,
  }: {
    mixed: string[];
    trained?: AdapterRows;
    grid: ScoreGrid;
    tmp: string;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<TargetRow[]> {
  const { entries, targets, settings } = setup;
  const adapters = entries.map((e) => e.adapterPath as string);
  const rows: TargetRow[] = [];
  const units = targets.length * (mixed.length + trained.size + 2);
  let done = 0;
  const tick = (task: string) =>
    progress?.({ phase: "demo", done: ++done, total: units, unit: "evaluations", detail: task });
  const evalAdapter = async (dir: string, records: Parameters<typeof scoreBackend>[1]) => {
    const b = await backend.withAdapter(dir);
    try {
      const s = await scoreBackend(b, records, settings, signal);
      return variantScore(s.rougeL, s.exactMatch, s.perRecord.predictions);
    } finally {
      await b.dispose();
    }
  };
  for (const task of targets) {
    throwIfAborted(signal);
    const entry = entries[setup.column.get(task) as number] as (typeof entries)[number];
    const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
    const records = evalRecords(dataset.splits.test, backend.tokenizer, settings);
    if (records.length === 0) throw new LoramixError("INPUT", `${entry.dataPath}: no test records`);
    const majority = majorityScore(dataset.splits.train, dataset.splits.test.slice(0, settings.limit));
    const row: TargetRow = {
      task,
      family: setup.familyOf.get(task) ?? "",
      scores: {},
      references: records.map((r) => r.output),
      majorityAnswer: majority.answer,
    };
    const put = (variant: string, s: VariantScore) => {
      row.scores[variant] = s;
      grid.get(variant)?.set(task, { rougeL: s.rougeL, exactMatch: s.exactMatch });
    };
    put(
      "majority",
      variantScore(
        majority.rougeL,
        majority.exactMatch,
        records.map(() => majority.answer),
      ),
    );
    const base = await scoreBackend(backend, records, settings, signal);
    put("base", variantScore(base.rougeL, base.exactMatch, base.perRecord.predictions));
    tick(task);
    put("trained", await evalAdapter(entry.adapterPath as string, records));
    tick(task);
    for (const variant of mixed) {
      throwIfAborted(signal);
      const dir = join(tmp, `${task}-${variant.replace("/", "-")}`);
      await mixAdapters({
        adapters,
        weights: [...targetRow(setup, weightRows.get(variant) as Float64Array, task)],
        out: dir,
        signal,
      });
      put(variant, await evalAdapter(dir, records));
      await rm(dir, { recursive: true, force: true });
      tick(task);
    }
    for (const [variant, dirs] of trained) {
      throwIfAborted(signal);
      put(variant, await evalAdapter(dirs.get(task) as string, records));
      tick(task);
    }
    rows.push(row);
  }
  return rows;
}
