import { LoramixError, throwIfAborted } from "../errors.js";
import type { Profile } from "../profiles/profile.js";
import type { ProgressSink } from "../util/progress.js";
import { yieldToEventLoop } from "../util/yield.js";
import { fillDenseJs, type JsParts, jsFromParts, jsParts } from "./js.js";
import { fillDenseLog, type KlParts, klFromParts, klParts } from "./kl.js";
import { type DistanceOptions, METRICS, type Metric } from "./metric.js";
import { KernelConvolver, kernelDot, MMD_SAMPLES, type MmdParts, mmdParts, sampleProfile } from "./mmd.js";
import { type CdfParts, cdfParts, wassersteinFromParts } from "./wasserstein.js";

/** Distances as row-major N_targets × N_candidates matrices, one per requested metric. */
export type DistanceMatrices = Partial<Record<Metric, Float64Array>>;

export interface PairwiseOptions extends DistanceOptions {
  metrics?: readonly Metric[];
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/** Everything a metric needs from one profile, computed once per profile and run. */
interface Parts {
  kl?: KlParts;
  js?: JsParts;
  wd?: CdfParts;
  mmd?: MmdParts;
}

/** The common vocabulary; profiles of different tokenizers or without tokens have no distance. */
function checkProfiles(profiles: readonly Profile[]): number {
  const first = profiles[0];
  if (!first) return 0;
  for (const [i, p] of profiles.entries()) {
    if (p.vocabSize !== first.vocabSize || p.tokenizer !== first.tokenizer) {
      throw new LoramixError(
        "TOKENIZER",
        `profile ${i} was made with tokenizer ${p.tokenizer} (vocabulary ${p.vocabSize}), profile 0 with ${first.tokenizer} (vocabulary ${first.vocabSize})`,
      );
    }
    if (p.nTokens <= 0)
      throw new LoramixError("INPUT", `profile ${i} has no tokens: its distances are undefined`);
    const last = p.ids[p.ids.length - 1];
    if (p.ids.length !== p.counts.length || (last !== undefined && last >= p.vocabSize)) {
      throw new RangeError(`profile ${i}: ids and counts differ in length or an id is beyond the vocabulary`);
    }
  }
  if (first.vocabSize < 2)
    throw new LoramixError("INPUT", `vocabulary of ${first.vocabSize} ids: numpy's histogram needs 2`);
  return first.vocabSize;
}

function prepare(p: Profile, want: ReadonlySet<Metric>, options: DistanceOptions): Parts {
  const sampled = options.mmd === "sampled";
  return {
    kl: want.has("kl") ? klParts(p) : undefined,
    js: want.has("js") ? jsParts(p) : undefined,
    wd: want.has("wd") ? cdfParts(p) : undefined,
    mmd: want.has("mmd")
      ? mmdParts(sampled ? sampleProfile(p, options.mmdSamples ?? MMD_SAMPLES, options.seed ?? 0) : p)
      : undefined,
  };
}

/**
 * Distances between every target (row) and every candidate (column) for all requested metrics in
 * one pass over the candidates: each candidate's dense arrays are filled once, into buffers
 * allocated once, and serve every target. When `square` (targets are the candidates), the
 * symmetric metrics (JS, WD, MMD) compute only i ≤ j and mirror; KL is computed in full.
 */
async function computeDistances(
  targets: readonly Profile[],
  candidates: readonly Profile[],
  square: boolean,
  { metrics = METRICS, mmd = "exact", seed = 0, mmdSamples = MMD_SAMPLES, signal, progress }: PairwiseOptions,
): Promise<DistanceMatrices> {
  const v = checkProfiles([...targets, ...candidates]);
  const want = new Set(metrics);
  const nt = targets.length;
  const nc = candidates.length;
  const out: DistanceMatrices = {};
  for (const m of want) out[m] = new Float64Array(nt * nc);
  if (nt === 0 || nc === 0) return out;
  const options = { mmd, seed, mmdSamples };
  const tParts = targets.map((p) => prepare(p, want, options));
  const cParts = square ? tParts : candidates.map((p) => prepare(p, want, options));

  const denseLog = out.kl ? new Float64Array(v - 1) : undefined;
  const denseJs = out.js ? new Float64Array(v - 1) : undefined;
  const denseAlone = out.js ? new Float64Array(v - 1) : undefined;
  const conv = out.mmd ? new KernelConvolver(v) : undefined;
  const kqEven = new Float64Array(conv ? v : 0);
  const kqOdd = new Float64Array(conv ? v : 0);
  // pᵀKp of every target; with `square` they come from the candidate pass, before they are needed.
  const tSelf = new Float64Array(nt);
  const cSelf = new Float64Array(nc);
  if (conv && !square) {
    for (let i = 0; i < nt; i += 2) {
      throwIfAborted(signal);
      const a = tParts[i]?.mmd as MmdParts;
      const b = tParts[i + 1]?.mmd;
      conv.convolve(a, kqEven, b, kqOdd);
      tSelf[i] = kernelDot(a, kqEven);
      if (b) tSelf[i + 1] = kernelDot(b, kqOdd);
    }
  }

  const phase = `distances ${[...want].join("+")}`;
  for (let j = 0; j < nc; j++) {
    await yieldToEventLoop(signal);
    const c = cParts[j] as Parts;
    const rows = square ? j + 1 : nt;
    if (out.kl && denseLog && c.kl) {
      fillDenseLog(c.kl, denseLog);
      for (let i = 0; i < nt; i++)
        out.kl[i * nc + j] = klFromParts(tParts[i]?.kl as KlParts, denseLog, c.kl.logSum);
    }
    if (out.js && denseJs && denseAlone && c.js) {
      fillDenseJs(c.js, denseJs, denseAlone);
      for (let i = 0; i < rows; i++) {
        out.js[i * nc + j] = jsFromParts(tParts[i]?.js as JsParts, denseJs, denseAlone, c.js.total);
      }
    }
    if (out.wd && c.wd) {
      for (let i = 0; i < rows; i++)
        out.wd[i * nc + j] = wassersteinFromParts(tParts[i]?.wd as CdfParts, c.wd);
    }
    if (out.mmd && conv && c.mmd) {
      // Two candidates share one transform: the odd column was convolved with the even one before it.
      if (j % 2 === 0) conv.convolve(c.mmd, kqEven, cParts[j + 1]?.mmd, kqOdd);
      const kc = j % 2 === 0 ? kqEven : kqOdd;
      cSelf[j] = kernelDot(c.mmd, kc);
      const self = square ? cSelf : tSelf;
      for (let i = 0; i < rows; i++) {
        out.mmd[i * nc + j] =
          (self[i] as number) + (cSelf[j] as number) - 2 * kernelDot(tParts[i]?.mmd as MmdParts, kc);
      }
    }
    if (square) {
      for (const m of ["js", "wd", "mmd"] as const) {
        const values = out[m];
        if (values) for (let i = 0; i < j; i++) values[j * nc + i] = values[i * nc + j] as number;
      }
    }
    progress?.({ phase, done: j + 1, total: nc, unit: "candidates" });
  }
  return out;
}

/**
 * All requested metrics between every target (row) and every candidate (column), SPEC §3.
 * Passing the same array twice computes a bank's square matrix using the symmetry of JS, WD, MMD.
 */
export function distanceMatrices(
  targets: readonly Profile[],
  candidates: readonly Profile[],
  options: PairwiseOptions = {},
): Promise<DistanceMatrices> {
  return computeDistances(targets, candidates, targets === candidates, options);
}

/** The square matrices of a set of profiles (rows = targets, columns = candidates, self entries 0). */
export function pairwiseDistances(
  profiles: readonly Profile[],
  options: PairwiseOptions = {},
): Promise<DistanceMatrices> {
  return computeDistances(profiles, profiles, true, options);
}

/** Distances from one new dataset (the target, KL's P) to each candidate, for one metric. */
export async function distancesToCandidates(
  target: Profile,
  candidates: readonly Profile[],
  metric: Metric,
  options: Omit<PairwiseOptions, "metrics"> = {},
): Promise<Float64Array> {
  const row = (await computeDistances([target], candidates, false, { ...options, metrics: [metric] }))[
    metric
  ];
  return row as Float64Array;
}
