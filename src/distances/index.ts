/** `loramix/distances`: distances between token profiles (SPEC §3) and the bank's cached pairwise matrices. */
export { type BinnedDensity, binnedDensity } from "./binned.js";
export { jsDivergence } from "./js.js";
export { klDivergence } from "./kl.js";
export {
  type BankDistanceOptions,
  type BankDistances,
  bankDistanceMatrices,
  bankDistanceMatrix,
  bankProfiles,
  type DistanceBank,
  restrictMatrix,
} from "./matrix.js";
export { type DistanceOptions, EPSILON, METRICS, type Metric, type MmdMode } from "./metric.js";
export {
  KernelConvolver,
  MMD_SAMPLES,
  MMD_SCALES,
  mmdMultiscale,
  mmdSampled,
  multiscaleKernel,
  sampleProfile,
} from "./mmd.js";
export {
  type DistanceMatrices,
  distanceMatrices,
  distancesToCandidates,
  type PairwiseOptions,
  pairwiseDistances,
} from "./pairwise.js";
export { wassersteinOnIds } from "./wasserstein.js";
