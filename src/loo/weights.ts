import type { Bank } from "../bank/store.js";
import { bankDistanceMatrix, restrictMatrix } from "../distances/matrix.js";
import type { Metric } from "../distances/metric.js";
import { throwIfAborted } from "../errors.js";
import type { ProfileSide } from "../profiles/profile.js";
import type { ProgressSink } from "../util/progress.js";
import { loadBankMlp } from "../weights/bankMlp.js";
import { leaveOneOutWeights } from "../weights/leaveOneOut.js";
import type { WeightMethod } from "../weights/methods.js";
import { pruneWeights } from "../weights/prune.js";

export interface LooConfiguration {
  metric: Metric;
  method: WeightMethod;
  /** Why it was not evaluated (e.g. no trained MLP for neural). */
  skipped?: string;
  heatmap?: string;
}

/** One configuration's weights: a row over the candidates per target (its own entry 0). */
export interface LooWeights {
  metric: Metric;
  method: WeightMethod;
  rows: Float64Array[];
  /** neural only: each entry's part of the MLP's training split. */
  split?: Map<string, "train" | "valid">;
}

export function heatmapName(metric: Metric, method: WeightMethod): string {
  return `heatmap-${metric}-${method}.png`;
}

/**
 * Every configuration's leave-one-out weights for the targets (rows `targets` of the candidates
 * `ids`), from the bank's cached distance matrices; `neural` is skipped with a reason when the
 * bank has no trained MLP for it.
 */
export async function looWeights(
  bank: Bank,
  ids: string[],
  targets: number[],
  {
    metrics,
    methods,
    side,
    topK,
    temperature,
    mlpHidden,
    mlpSeed,
    signal,
    progress,
  }: {
    metrics: Metric[];
    methods: WeightMethod[];
    side: ProfileSide;
    topK?: number;
    temperature: number;
    mlpHidden: number;
    mlpSeed: number;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<{ configurations: LooConfiguration[]; weights: LooWeights[] }> {
  const n = ids.length;
  const configurations: LooConfiguration[] = [];
  const weights: LooWeights[] = [];
  for (const metric of metrics) {
    throwIfAborted(signal);
    const dist = await bankDistanceMatrix(bank, { metric, side, signal, progress });
    const sub = restrictMatrix(dist, ids, `${bank.dir} (${metric})`);
    for (const method of methods) {
      let mlp: Awaited<ReturnType<typeof loadBankMlp>>;
      if (method === "neural") {
        mlp = await loadBankMlp(bank, { metric, hidden: mlpHidden, seed: mlpSeed });
        if (!mlp) {
          configurations.push({
            metric,
            method,
            skipped: `no trained MLP (H=${mlpHidden}, seed ${mlpSeed}) for ${metric} in the bank: run \`loramix train-mlp ${bank.dir} --metric ${metric}\``,
          });
          continue;
        }
      }
      const all = leaveOneOutWeights(sub, n, { method, temperature, mlp });
      const rows = targets.map((i) => {
        const row = all.slice(i * n, (i + 1) * n);
        return topK === undefined ? row : pruneWeights(row, { topK });
      });
      const split = mlp
        ? new Map<string, "train" | "valid">([
            ...mlp.meta.trainIds.map((id) => [id, "train"] as const),
            ...mlp.meta.validIds.map((id) => [id, "valid"] as const),
          ])
        : undefined;
      configurations.push({ metric, method, heatmap: heatmapName(metric, method) });
      weights.push({ metric, method, rows, split });
    }
  }
  return { configurations, weights };
}
