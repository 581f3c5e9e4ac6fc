import type { Bank } from "../bank/store.js";
import type { Metric } from "../distances/metric.js";
import { type Adapter, loadAdapter } from "../formats/peft.js";
import type { MixMode } from "../merge/mixAdapters.js";
import type { ProgressSink } from "../util/progress.js";
import type { WeightMethod } from "../weights/methods.js";
import { pruneWeights } from "../weights/prune.js";
import { type DeltaJob, deltaScores } from "./deltaScores.js";
import { gramScores, type LooScores } from "./scores.js";
import type { LooWeights } from "./weights.js";

export interface LooRow {
  target: string;
  metric: Metric;
  method: WeightMethod;
  /** The target's weights over the candidates (its own entry 0), as used for the parameter numbers. */
  weights: number[];
  merges: Partial<Record<MixMode, LooScores>>;
  /** neural only: whether the target was among the MLP's training entries (in-sample). */
  mlpSplit?: "train" | "valid";
}

/**
 * Compares every configuration's predicted adapter with each target's real one: parameter numbers
 * of `linear` exactly from the Gram matrix, ΔW numbers by mixing module factors in memory with the
 * top `deltaTopK` (linear, cat) or `svdTopK` (delta-svd) weights. Only the adapters some
 * prediction uses are loaded.
 */
export async function looPredictions(
  bank: Bank,
  gram: { ids: string[]; entryValues: Float64Array },
  targets: number[],
  weights: LooWeights[],
  {
    merges,
    deltaTopK,
    svdTopK,
    signal,
    progress,
  }: { merges: MixMode[]; deltaTopK: number; svdTopK: number; signal?: AbortSignal; progress?: ProgressSink },
): Promise<LooRow[]> {
  const { ids } = gram;
  const n = ids.length;
  const jobs: DeltaJob[] = [];
  for (const w of weights) {
    for (const [t, row] of w.rows.entries()) {
      const linear =
        merges.includes("linear") || merges.includes("cat")
          ? pruneWeights(row, { topK: deltaTopK })
          : undefined;
      jobs.push({
        target: targets[t] as number,
        linear: merges.includes("linear") ? linear : undefined,
        cat: merges.includes("cat") ? linear : undefined,
        svd: merges.includes("delta-svd") ? pruneWeights(row, { topK: svdTopK }) : undefined,
      });
    }
  }
  const adapters: (Adapter | undefined)[] = new Array(n).fill(undefined);
  const needed = new Set<number>();
  for (const job of jobs) {
    needed.add(job.target);
    for (const w of [job.linear, job.cat, job.svd]) {
      if (w) for (const [j, v] of w.entries()) if (v !== 0) needed.add(j);
    }
  }
  const entryOf = new Map(bank.entries().map((e) => [e.id, e]));
  for (const j of needed)
    adapters[j] = await loadAdapter(entryOf.get(ids[j] as string)?.adapterPath as string);
  const scored = await deltaScores({ adapters, jobs, signal, progress });

  const rows: LooRow[] = [];
  let q = 0;
  for (const w of weights) {
    for (const [t, row] of w.rows.entries()) {
      const i = targets[t] as number;
      const s = scored[q++] as (typeof scored)[number];
      const result: LooRow = {
        target: ids[i] as string,
        metric: w.metric,
        method: w.method,
        weights: [...row],
        merges: {},
      };
      if (s.linear) {
        const g = gramScores(gram.entryValues, n, row, i);
        result.merges.linear = { ...s.linear, paramCosine: g.cosine, paramRelL2: g.relL2 };
      }
      if (s.svd) result.merges["delta-svd"] = s.svd;
      if (s.cat) result.merges.cat = s.cat;
      const split = w.split?.get(result.target);
      if (split) result.mlpSplit = split;
      rows.push(result);
    }
  }
  return rows;
}
