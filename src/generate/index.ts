/** `loramix/generate`: the whole method for a new dataset: plan, profile, distances, weights, mix, record. */

export { type ChoiceInputs, chooseWeights, type WeightChoice } from "./chooseWeights.js";
export { type FinetuneRecord, type FinetuneSection, mixAndFinetune } from "./finetune.js";
export { FLAT_EFFECTIVE, type Flatness, flatness } from "./flatness.js";
export { type GenerateResult, type GenerateTimings, generateAdapter } from "./generateAdapter.js";
export {
  type GenerateOptions,
  type GeneratePlan,
  resolvePlan,
  type ScoringPlan,
  SELECT_MODES,
  type SelectMode,
} from "./plan.js";
export { type AdapterRecord, adapterRecord, type CandidateWeight, type SelectionRecord } from "./record.js";
export { type TargetSource, targetProfile } from "./target.js";
export { mixUpdateNorm, type Written, writeAdapter } from "./writeAdapter.js";
