import type { Bank, BankEntry } from "../bank/store.js";
import { LoramixError } from "../errors.js";
import type { Profile, ProfileSide } from "../profiles/profile.js";
import { sha256 } from "../util/hash.js";
import type { ProgressSink } from "../util/progress.js";
import type { DistanceOptions, Metric } from "./metric.js";
import { MMD_SAMPLES } from "./mmd.js";
import { pairwiseDistances } from "./pairwise.js";

/** A square bank matrix: rows = targets, columns = candidates, both in `ids` order. */
export interface BankDistances {
  ids: string[];
  metric: Metric;
  values: Float64Array;
}

export interface BankDistanceOptions extends DistanceOptions {
  /** Which side's profiles are compared (default "both", SPEC §2). */
  side?: ProfileSide;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/** What the distance matrices need of a bank (a `Bank` fits). */
export type DistanceBank = Pick<Bank, "dir" | "profile" | "getCache" | "putCache"> & {
  entries(): Pick<BankEntry, "id" | "dataPath">[];
};

/** Entries whose profile of `side` is missing or out of date, and the command that fixes it. */
function staleProfilesError(dir: string, stale: readonly string[], side: ProfileSide): LoramixError {
  const which = side === "both" ? "" : `${side}-side `;
  const list = `${stale.slice(0, 3).join(", ")}${stale.length > 3 ? ", ..." : ""}`;
  return new LoramixError(
    "BANK",
    `${dir}: ${stale.length} entries have no up-to-date ${which}profile (${list}); run \`loramix bank index ${dir}${side === "both" ? "" : ` --side ${side}`}\``,
  );
}

/**
 * The fresh profiles of the bank's entries (or of `only`, in that order); a missing one means the
 * bank needs `bank index`.
 */
export function bankProfiles(
  bank: DistanceBank,
  side: ProfileSide = "both",
  only?: readonly Pick<BankEntry, "id" | "dataPath">[],
): { ids: string[]; profiles: Profile[] } {
  const ids: string[] = [];
  const profiles: Profile[] = [];
  const stale: string[] = [];
  for (const e of only ?? bank.entries()) {
    const p = bank.profile(e.id, side);
    if (p) {
      if (p.nTokens === 0)
        throw new LoramixError("BANK", `${e.dataPath}: the train split of "${e.id}" has no tokens`);
      ids.push(e.id);
      profiles.push(p);
    } else stale.push(e.id);
  }
  if (stale.length > 0) {
    throw staleProfilesError(bank.dir, stale, side);
  }
  if (ids.length === 0) throw new LoramixError("BANK", `${bank.dir}: the bank has no entries`);
  return { ids, profiles };
}

/**
 * A square matrix over `matrix.ids`, restricted and reordered to `ids` (a subset, any order, an id
 * may repeat): the one way a bank matrix (distances, Gram) is narrowed to the entries at hand.
 */
export function restrictMatrix(
  matrix: { ids: readonly string[]; values: Float64Array },
  ids: readonly string[],
  where: string,
): Float64Array {
  const m = matrix.ids.length;
  if (matrix.values.length !== m * m)
    throw new LoramixError("BANK", `${where}: matrix has ${matrix.values.length} values for ${m} entries`);
  const column = new Map(matrix.ids.map((id, k) => [id, k]));
  const at = ids.map((id) => {
    const k = column.get(id);
    if (k === undefined) throw new LoramixError("BANK", `${where}: no row for "${id}"`);
    return k;
  });
  const n = ids.length;
  const out = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    const row = (at[a] as number) * m;
    for (let b = 0; b < n; b++) out[a * n + b] = matrix.values[row + (at[b] as number)] as number;
  }
  return out;
}

/** Bumped whenever a formula or the sampling changes, so older cached matrices are not reused. */
const CACHE_VERSION = 2;

/**
 * Cache key: the metric, its options and every profile's identity (entry id, tokenizer, hash of the
 * profiled texts), so any change invalidates it.
 */
function cacheKey(metric: Metric, ids: string[], profiles: Profile[], o: DistanceOptions): string {
  const options =
    metric === "mmd"
      ? `${o.mmd ?? "exact"}:${o.mmd === "sampled" ? `${o.seed ?? 0}:${o.mmdSamples ?? MMD_SAMPLES}` : ""}`
      : "";
  // "both" keys are those of banks made before sides existed, so their caches stay valid.
  const side = (p: Profile | undefined) => (p?.side === "both" ? "" : `${p?.side}:`);
  const parts = ids.map(
    (id, i) => `${id}=${profiles[i]?.tokenizer}:${side(profiles[i])}${profiles[i]?.datasetHash}`,
  );
  return sha256(`v${CACHE_VERSION}|${metric}|${options}|${parts.join(",")}`);
}

/**
 * The bank's pairwise matrices for the given metrics, from the bank's cache where valid; the
 * missing ones are computed together in one pass and cached.
 */
export async function bankDistanceMatrices(
  bank: DistanceBank,
  metrics: readonly Metric[],
  options: BankDistanceOptions = {},
): Promise<BankDistances[]> {
  const { ids, profiles } = bankProfiles(bank, options.side);
  const n = ids.length;
  const found = new Map<Metric, Float64Array>();
  const keys = new Map<Metric, string>();
  for (const m of metrics) {
    const key = cacheKey(m, ids, profiles, options);
    keys.set(m, key);
    const cached = bank.getCache("distances", key);
    if (cached && cached.byteLength === n * n * 8) {
      found.set(
        m,
        new Float64Array(cached.buffer.slice(cached.byteOffset, cached.byteOffset + cached.byteLength)),
      );
    }
  }
  const missing = metrics.filter((m) => !found.has(m));
  if (missing.length > 0) {
    const computed = await pairwiseDistances(profiles, { ...options, metrics: missing });
    for (const m of missing) {
      const values = computed[m]!;
      bank.putCache(
        "distances",
        keys.get(m)!,
        new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
      );
      found.set(m, values);
    }
  }
  return metrics.map((metric) => ({ ids, metric, values: found.get(metric)! }));
}

export async function bankDistanceMatrix(
  bank: DistanceBank,
  { metric, ...options }: BankDistanceOptions & { metric: Metric },
): Promise<BankDistances> {
  return (await bankDistanceMatrices(bank, [metric], options))[0]!;
}
