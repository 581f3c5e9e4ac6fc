/** `loramix/train`: LoRA training on the CPU with tfjs, for the testbed and `loramix train`. */
export { AdamW, type AdamWOptions, clipGlobalNorm } from "./adamw.js";
export {
  type EvaluateLossOptions,
  type ExampleLoss,
  evaluateLoss,
  type LossResult,
} from "./evaluateLoss.js";
export {
  type Batch,
  buildExample,
  DEFAULT_EOS_ID,
  DEFAULT_RULE,
  endTokenId,
  makeBatch,
  type SequenceRule,
  TRUNCATION_RULE,
  type TrainExample,
  truncationRule,
} from "./examples.js";
export {
  checkFinetuneSteps,
  DEFAULT_FINETUNE_LR,
  DEFAULT_FINETUNE_STEPS,
  type FinetuneOptions,
  type FinetuneResult,
  finetuneLora,
  finetuneRecords,
  finetuneUnavailable,
  llamaParameters,
  MAX_FINETUNE_PARAMETERS,
} from "./finetuneLora.js";
export { type LlamaWeights, loadLlamaWeights } from "./llamaWeights.js";
export {
  initLora,
  type LoraPair,
  type LoraWeights,
  loraConfig,
  loraTensors,
  readLora,
} from "./lora.js";
export { TfjsLlama } from "./tfjsLlama.js";
export {
  TRAIN_DEFAULTS,
  type TrainLoraOptions,
  type TrainLoraResult,
  type TrainStepsOptions,
  type TrainStepsResult,
  trainLora,
  trainSteps,
} from "./trainLora.js";
