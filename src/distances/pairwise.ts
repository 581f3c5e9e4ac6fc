import { throwIfAborted } from "../errors.js";
import type { Profile } from "../profiles/profile.js";
import type { ProgressSink } from "../util/progress.js";
import { fillDenseJs, jsFromParts, jsParts } from "./js.js";
import { fillDenseLog, klFromParts, klParts } from "./kl.js";
import { type DistanceOptions, type Metric, METRICS } from "./metric.js";
import { KernelConvolver, kernelDot, sampleProfile } from "./mmd.js";
import { wassersteinOnIds } from "./wasserstein.js";

/** Distances as an N_targets × N_candidates row-major matrix. */
export type DistanceMatrices = Partial<Record<Metric, Float64Array>>;

export interface PairwiseOptions extends DistanceOptions {
  metrics?: readonly Metric[];
  signal?: AbortSignal;
  progress?: ProgressSink;
}

function checkVocab(profiles: readonly Profile[]): number {
  const v = profiles[0]?.vocabSize ?? 0;
  for (const p of profiles) {
    if (p.vocabSize !== v || p.tokenizer !== profiles[0]!.tokenizer) {
      throw new Error(`profiles of different tokenizers (${profiles[0]!.tokenizer} vs ${p.tokenizer})`);
    }
  }
  return v;
}

/** Lets Ctrl-C (a signal handler) run between columns of a long computation. */
const yieldToEvents = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Distances between every target and every candidate, for all requested metrics in one pass over
 * the candidates: each candidate's dense helper arrays are filled once and reused by every target
 * (buffers allocated once). Rows = targets, columns = candidates (SPEC §3).
 */
export async function distanceMatrices(
  targets: readonly Profile[],
  candidates: readonly Profile[],
  { metrics = METRICS, mmd = "exact", seed = 0, mmdSamples = 1000, signal, progress }: PairwiseOptions = {},
): Promise<DistanceMatrices> {
  const v = checkVocab([...targets, ...candidates]);
  const nt = targets.length;
  const nc = candidates.length;
  const want = new Set(metrics);
  const out: DistanceMatrices = {};
  for (const m of want) out[m] = new Float64Array(nt * nc);

  const tKl = want.has("kl") ? targets.map(klParts) : [];
  const cKl = want.has("kl") ? candidates.map(klParts) : [];
  const tJs = want.has("js") ? targets.map(jsParts) : [];
  const cJs = want.has("js") ? candidates.map(jsParts) : [];
  const sampled = mmd === "sampled";
  const tMmd = want.has("mmd") ? targets.map((p) => (sampled ? sampleProfile(p, mmdSamples, seed) : p)) : [];
  const cMmd = want.has("mmd") ? candidates.map((p) => (sampled ? sampleProfile(p, mmdSamples, seed) : p)) : [];
  const conv = want.has("mmd") ? new KernelConvolver(v) : undefined;
  // Self terms pᵀKp. A bank against itself gets them from the candidate pass, saving N convolutions.
  const square = targets === candidates;
  const tSelf = new Float64Array(nt);
  const cSelf = new Float64Array(nc);
  const kBuf = new Float64Array(v);
  if (conv && !square) for (let i = 0; i < nt; i++) tSelf[i] = kernelDot(tMmd[i]!, conv.convolve(tMmd[i]!, kBuf));

  const denseLog = new Float64Array(v - 1);
  const denseQ = new Float64Array(v - 1);
  const denseAlone = new Float64Array(v - 1);
  const kq = new Float64Array(v);
  const phase = `distances ${[...want].join("+")}`;
  for (let j = 0; j < nc; j++) {
    throwIfAborted(signal);
    if (j % 8 === 0) await yieldToEvents();
    const q = candidates[j]!;
    if (out.kl) {
      fillDenseLog(cKl[j]!, denseLog);
      for (let i = 0; i < nt; i++) out.kl[i * nc + j] = klFromParts(tKl[i]!, cKl[j]!, denseLog);
    }
    if (out.js) {
      fillDenseJs(cJs[j]!, denseQ, denseAlone);
      for (let i = 0; i < nt; i++) out.js[i * nc + j] = jsFromParts(tJs[i]!, cJs[j]!, denseQ, denseAlone);
    }
    if (out.wd) for (let i = 0; i < nt; i++) out.wd[i * nc + j] = wassersteinOnIds(targets[i]!, q);
    if (out.mmd && conv) {
      const cq = cMmd[j]!;
      conv.convolve(cq, kq);
      cSelf[j] = kernelDot(cq, kq);
      for (let i = 0; i < nt; i++) out.mmd[i * nc + j] = -2 * kernelDot(tMmd[i]!, kq);
    }
    progress?.({ phase, done: j + 1, total: nc, unit: "candidates" });
  }
  if (out.mmd) {
    const self = square ? cSelf : tSelf;
    for (let i = 0; i < nt; i++) for (let j = 0; j < nc; j++) out.mmd[i * nc + j]! += self[i]! + cSelf[j]!;
  }
  return out;
}

/** Distances from one new dataset to each candidate (one row). */
export async function distancesToCandidates(
  target: Profile,
  candidates: readonly Profile[],
  metric: Metric,
  options: Omit<PairwiseOptions, "metrics"> = {},
): Promise<Float64Array> {
  const m = await distanceMatrices([target], candidates, { ...options, metrics: [metric] });
  return m[metric]!;
}
