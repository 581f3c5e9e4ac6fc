/** `loramix/generate`: the whole method for a new dataset: profile, distances, weights, mix, provenance. */

export { type FinetuneRecord, mixAndFinetune } from "./finetune.js";
export { FLAT_EFFECTIVE, type Flatness, flatness } from "./flatness.js";
export {
  type GenerateOptions,
  type GenerateResult,
  generateAdapter,
} from "./generateAdapter.js";
export { type CandidateWeight, provenanceRecord } from "./provenance.js";
export { type TargetSource, targetProfile } from "./target.js";
