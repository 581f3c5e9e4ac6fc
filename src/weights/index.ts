/** `loramix/weights`: weighting methods (SPEC §4: attentional, normalized, neural) and the Gram matrix. */
export { attentionalWeights, type WeightOptions } from "./attentional.js";
export { type EntryDistances, loadBankMlp, mlpKey, trainBankMlp } from "./bankMlp.js";
export {
  type BankGram,
  bankGram,
  type GramMatrix,
  type GramOptions,
  type GramSource,
  gramKey,
  gramOfAdapters,
} from "./gram.js";
export { gramMixtureLoss } from "./gramLoss.js";
export { leaveOneOutWeights } from "./leaveOneOut.js";
export { methodWeights, WEIGHT_METHODS, type WeightMethod } from "./methods.js";
export {
  initMlp,
  type MlpMetadata,
  mlpForward,
  mlpFromBuffer,
  mlpToBuffer,
  type ScalarMlp,
  type TrainedMlp,
} from "./mlp.js";
export { neuralWeights } from "./neural.js";
export { normalizedWeights, Z_SCORE_CONVENTION, zScoreRow } from "./normalized.js";
export { checkPruneOptions, type PruneOptions, pruneWeights } from "./prune.js";
export { softmin } from "./softmin.js";
export { type TrainMlpOptions, trainScalarMlp } from "./trainMlp.js";
