import { indexBank } from "../bank/indexBank.js";
import { bankDistanceMatrices, bankDistanceMatrix, restrictMatrix } from "../distances/matrix.js";
import type { Metric } from "../distances/metric.js";
import { throwIfAborted } from "../errors.js";
import type { ProfileSide } from "../profiles/profile.js";
import type { ProgressSink } from "../util/progress.js";
import { bankGram } from "../weights/gram.js";
import { leaveOneOutWeights } from "../weights/leaveOneOut.js";
import { neuralSideError, type WeightMethod } from "../weights/methods.js";
import type { ScalarMlp } from "../weights/mlp.js";
import { trainScalarMlp } from "../weights/trainMlp.js";
import { type DemoSetup, targetRow } from "./setup.js";
import { configName, type FamilyShares } from "./tables.js";

/** Variant name → n × n leave-one-out weights over the candidates (row = target, its own entry 0). */
export type WeightRows = Map<string, Float64Array>;

export interface PaperWeights {
  weightRows: WeightRows;
  /** The paper's configurations ("method/metric"), in table order. */
  configs: string[];
  /** Output-side JS between the candidates: loramix's rows pick their candidates by it. */
  answerJs: Float64Array;
  notes: string[];
}

/**
 * Every paper configuration's leave-one-out weights (SPEC §4, §6), plus the nearest-adapter
 * (input + output and output side) and uniform baselines. The neural weighting's MLP is trained
 * without the targets where enough entries remain, so its numbers are out of sample.
 */
export async function paperWeights(
  setup: DemoSetup,
  {
    metrics,
    methods,
    side,
    mlpHidden,
    signal,
    progress,
  }: {
    metrics: Metric[];
    methods: WeightMethod[];
    side: ProfileSide;
    mlpHidden: number;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<PaperWeights> {
  const { bank, ids, targets } = setup;
  const n = ids.length;
  const where = setup.paths.dir;
  if (side !== "both" && methods.includes("neural")) throw neuralSideError(side);
  const needed: Metric[] = [...new Set<Metric>([...metrics, "js"])];
  const matrices = new Map<Metric, Float64Array>();
  for (const d of await bankDistanceMatrices(bank, needed, { side, signal, progress }))
    matrices.set(d.metric, restrictMatrix(d, ids, where));
  // The shipped bank has its output-side profiles; a testbed built by an older loramix gets them here.
  if (bank.staleIds("output").length > 0) await indexBank(bank, { side: "output", signal, progress });
  const outputJs = await bankDistanceMatrix(bank, { metric: "js", side: "output", signal, progress });
  const answerJs = restrictMatrix(outputJs, ids, where);

  const notes: string[] = [];
  const mlps = new Map<Metric, ScalarMlp>();
  if (methods.includes("neural")) {
    const gram = await bankGram(bank, { signal, progress });
    const inTarget = new Set(targets);
    // Trained without the targets, so their numbers are out of sample; with every task a target, the paper's seeded 80% split.
    const trainIds = ids.filter((id) => !inTarget.has(id));
    const useIds = trainIds.length >= 5 ? trainIds : ids;
    notes.push(
      useIds === ids
        ? `neural: MLP (H=${mlpHidden}) trained on a seeded 80% of all ${n} entries, so some targets are in-sample`
        : `neural: MLP (H=${mlpHidden}) trained on the ${useIds.length} non-target entries (seeded 80% of them), so every target is out of sample`,
    );
    const g = restrictMatrix({ ids: gram.ids, values: gram.entryValues }, useIds, where);
    for (const metric of metrics) {
      throwIfAborted(signal);
      mlps.set(
        metric,
        await trainScalarMlp({
          distances: restrictMatrix({ ids, values: matrices.get(metric) as Float64Array }, useIds, where),
          gram: g,
          params: gram.params,
          ids: useIds,
          metric,
          gramKey: gram.key,
          hidden: mlpHidden,
          signal,
        }),
      );
    }
  }
  const weightRows: WeightRows = new Map();
  for (const method of methods) {
    for (const metric of metrics) {
      const w = leaveOneOutWeights(matrices.get(metric) as Float64Array, n, {
        method,
        mlp: mlps.get(metric),
      });
      weightRows.set(configName(method, metric), w);
    }
  }
  weightRows.set("nearest", nearestRows(matrices.get("js") as Float64Array, n));
  weightRows.set("nearest-output", nearestRows(answerJs, n));
  weightRows.set("uniform", uniformRows(n));
  const configs = methods.flatMap((method) => metrics.map((metric) => configName(method, metric)));
  return { weightRows, configs, answerJs, notes };
}

/** Row i: weight 1 on the entry nearest to i (ties by bank order), i itself excluded. */
export function nearestRows(distances: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    let best = -1;
    for (let j = 0; j < n; j++) {
      if (j !== i && (best < 0 || (distances[i * n + j] as number) < (distances[i * n + best] as number)))
        best = j;
    }
    out[i * n + best] = 1;
  }
  return out;
}

/** Row i: the same weight on every other entry. */
function uniformRows(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (j !== i) out[i * n + j] = 1 / (n - 1);
  return out;
}

/** Per variant and target: the weight on the target's family (the other tasks that share its answers). */
export function familyShares(setup: DemoSetup, weightRows: WeightRows, variants: string[]): FamilyShares {
  const { ids, targets, familyOf } = setup;
  return new Map(
    variants.map((variant) => {
      const w = weightRows.get(variant) as Float64Array;
      const perTarget = targets.map((task) => {
        const row = targetRow(setup, w, task);
        const family = familyOf.get(task);
        let share = 0;
        for (const [j, id] of ids.entries()) if (familyOf.get(id) === family) share += row[j] as number;
        return [task, share] as const;
      });
      return [variant, new Map(perTarget)];
    }),
  );
}

/** Each variant's largest weight, averaged over the targets. */
export function meanMaxWeight(setup: DemoSetup, weightRows: WeightRows): Map<string, number> {
  const out = new Map<string, number>();
  for (const [variant, w] of weightRows) {
    let sum = 0;
    for (const task of setup.targets) sum += Math.max(...targetRow(setup, w, task));
    out.set(variant, setup.targets.length > 0 ? sum / setup.targets.length : 0);
  }
  return out;
}
