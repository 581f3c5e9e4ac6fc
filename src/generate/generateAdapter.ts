import { type Bank, withBank } from "../bank/store.js";
import type { DatasetOptions } from "../datasets/load.js";
import { METRICS, type Metric, type MmdMode } from "../distances/metric.js";
import { distancesToCandidates } from "../distances/pairwise.js";
import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import { MIX_MODES, type MixMode, type MixResult, mixAdapters } from "../merge/mixAdapters.js";
import { isSyntheticAdapter } from "../merge/sources.js";
import type { Profile } from "../profiles/profile.js";
import type { ProgressSink } from "../util/progress.js";
import { attentionalWeights } from "../weights/attentional.js";
import { loadBankMlp, mlpKey } from "../weights/bankMlp.js";
import { gramKey } from "../weights/gram.js";
import type { WeightMethod } from "../weights/leaveOneOut.js";
import { neuralWeights } from "../weights/neural.js";
import { normalizedWeights } from "../weights/normalized.js";
import { selectWeights } from "../weights/select.js";
import { type CandidateWeight, provenanceRecord } from "./provenance.js";
import { targetProfile } from "./target.js";

const METHODS: readonly WeightMethod[] = ["attentional", "normalized", "neural"];

export interface GenerateOptions {
  /** A bank or its directory (opened and closed here). */
  bank: Bank | string;
  /** The target: a dataset (file or directory) or a profile.json made by `loramix profile` with the bank's tokenizer. */
  data: string;
  dataOptions?: DatasetOptions;
  metric?: Metric;
  method?: WeightMethod;
  merge?: MixMode;
  topK?: number;
  minWeight?: number;
  /** Softmin temperature τ of attentional and normalized (SPEC §4). */
  temperature?: number;
  mmd?: MmdMode;
  /** The trained MLP looked up for `neural` (as `loramix train-mlp` stored it). */
  mlpHidden?: number;
  mlpSeed?: number;
  /** Output adapter directory, replaced atomically. */
  out: string;
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface GenerateResult {
  out: string;
  /** Every candidate, by decreasing weight (ties by id). */
  weights: CandidateWeight[];
  mix: MixResult;
  target: { records: number; tokens: number; kind: "dataset" | "profile" };
  synthetic: boolean;
  /** Seconds per phase: profile, distances, weights, mix. */
  timings: Record<"profile" | "distances" | "weights" | "mix", number>;
}

/**
 * The whole method for a new dataset (SPEC §2–5): profile it with the bank's tokenizer, measure
 * its distance to every bank entry that has an adapter, weight them, optionally keep the top-k /
 * those above min-weight, mix, and write the adapter directory with its loramix.json.
 */
export async function generateAdapter(options: GenerateOptions): Promise<GenerateResult> {
  return withBank(options.bank, (bank) => generateWithBank(bank, options));
}

async function generateWithBank(
  bank: Bank,
  {
    data,
    dataOptions,
    metric = "js",
    method = "normalized",
    merge = "linear",
    topK,
    minWeight,
    temperature = 1,
    mmd = "exact",
    mlpHidden = 64,
    mlpSeed = 0,
    out,
    threads,
    signal,
    progress,
  }: GenerateOptions,
): Promise<GenerateResult> {
  if (!METRICS.includes(metric)) throw usageError(`unknown metric "${metric}" (use ${METRICS.join(", ")})`);
  if (!METHODS.includes(method)) throw usageError(`unknown method "${method}" (use ${METHODS.join(", ")})`);
  if (!MIX_MODES.includes(merge)) throw usageError(`unknown merge "${merge}" (use ${MIX_MODES.join(", ")})`);
  if (method === "neural" && temperature !== 1) {
    throw usageError(
      "--temperature applies to attentional and normalized; the neural weighting learns its own scale",
    );
  }
  const candidates = bank.entries().filter((e) => e.adapterPath !== null);
  if (candidates.length === 0) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: the bank has no adapters to mix (add entries with --adapter)`,
    );
  }
  const profiles: Profile[] = [];
  const stale: string[] = [];
  for (const e of candidates) {
    const p = bank.profile(e.id);
    if (p) profiles.push(p);
    else stale.push(e.id);
  }
  if (stale.length > 0) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: ${stale.length} entries have no up-to-date profile (${stale.slice(0, 3).join(", ")}${stale.length > 3 ? ", ..." : ""}); run \`loramix bank index ${bank.dir}\``,
    );
  }
  // The MLP is looked up before any work so that a missing one fails at once.
  const mlp =
    method === "neural" ? await loadBankMlp(bank, { metric, hidden: mlpHidden, seed: mlpSeed }) : undefined;
  if (method === "neural" && !mlp) {
    throw new LoramixError(
      "BANK",
      `${bank.dir}: no trained MLP for metric ${metric} (H=${mlpHidden}, seed ${mlpSeed}) for the bank's current adapters; run \`loramix train-mlp ${bank.dir} --metric ${metric}\` first`,
    );
  }

  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const s = (now - t) / 1000;
    t = now;
    return s;
  };
  const { profile, source } = await targetProfile(bank, data, { dataOptions, threads, signal, progress });
  const profileSeconds = lap();
  throwIfAborted(signal);
  const distances = await distancesToCandidates(profile, profiles, metric, { mmd, signal, progress });
  const distanceSeconds = lap();
  // A new dataset has no self entry: the normalized statistics are over its N distances (SPEC §4).
  const raw =
    method === "attentional"
      ? attentionalWeights(distances, { temperature })
      : method === "normalized"
        ? normalizedWeights(distances, { temperature })
        : neuralWeights(distances, mlp as NonNullable<typeof mlp>);
  const selecting = topK !== undefined || minWeight !== undefined;
  const weights = selecting ? selectWeights(raw, { topK, minWeight }) : raw;
  const weightSeconds = lap();

  const rows: CandidateWeight[] = candidates.map((e, j) => ({
    id: e.id,
    weight: weights[j] as number,
    distance: distances[j] as number,
    ...(selecting ? { rawWeight: raw[j] as number } : {}),
  }));
  rows.sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const syntheticCount = candidates.filter((e) => isSyntheticAdapter(e.adapterPath as string)).length;
  const hashes = candidates.map((e) => e.adapterHash).filter((h): h is string => h !== null);
  const config = provenanceRecord({
    bank: { dir: bank.dir, tokenizer: bank.tokenizerName, createdBy: bank.createdBy },
    target: source,
    adapters: candidates
      .filter((_, j) => (weights[j] as number) !== 0)
      .map((e) => ({ id: e.id, path: e.adapterPath as string, hash: e.adapterHash })),
    metric,
    method,
    merge,
    options: {
      topK: topK ?? null,
      minWeight: minWeight ?? null,
      temperature,
      ...(metric === "mmd" ? { mmd } : {}),
      ...(mlp
        ? {
            mlp: {
              hidden: mlpHidden,
              seed: mlpSeed,
              key: mlpKey(metric, mlpHidden, mlpSeed, gramKey(hashes)),
            },
          }
        : {}),
    },
    weights: rows,
    synthetic: { count: syntheticCount, of: candidates.length },
  });
  const mix = await mixAdapters({
    adapters: candidates.map((e) => e.adapterPath as string),
    weights: [...weights],
    mode: merge,
    out,
    config,
    signal,
    progress,
  });
  return {
    out: mix.out,
    weights: rows,
    mix,
    target: { records: source.records, tokens: source.tokens, kind: source.kind },
    synthetic: syntheticCount > 0,
    timings: { profile: profileSeconds, distances: distanceSeconds, weights: weightSeconds, mix: lap() },
  };
}
