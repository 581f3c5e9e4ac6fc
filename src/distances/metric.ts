export const METRICS = ["kl", "js", "wd", "mmd"] as const;
export type Metric = (typeof METRICS)[number];

export type MmdMode = "exact" | "sampled";

export interface DistanceOptions {
  /** MMD estimator: exact over the id distributions (default) or the authors' sampled one. */
  mmd?: MmdMode;
  /** Seed of the sampled MMD estimator. */
  seed?: number;
  /** Ids drawn per dataset by the sampled MMD estimator (authors: 1000). */
  mmdSamples?: number;
}

/** Numpy-histogram smoothing of SPEC §3 (KL and JS). */
export const EPSILON = 1e-10;
