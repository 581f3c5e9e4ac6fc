/**
 * loramix: a LoRA adapter for a new dataset by mixing a bank of existing adapters (ICML 2025
 * CPU meta-generation). The main entry is the pipeline a user calls; each layer below it has its
 * own subpath (`loramix/formats`, `loramix/distances`, `loramix/weights`, `loramix/merge`, ...).
 * Every bank operation takes the bank (open, or its directory where stated) as its first argument.
 */
export { type AddEntryOptions, addEntry } from "./bank/add.js";
export { importLol, type LolImportResult } from "./bank/importLol.js";
export { type ImportOptions, type ImportResult, importSni } from "./bank/importSni.js";
export { type IndexResult, indexBank } from "./bank/indexBank.js";
export { type EntrySummary, listEntries } from "./bank/list.js";
export { Bank, type BankEntry, initBank, openBank } from "./bank/store.js";
export { type VerifyReport, verifyBank } from "./bank/verify.js";
export { hfToGguf } from "./convert/hfToGguf.js";
export { peftToGguf } from "./convert/peftToGguf.js";
export { type Dataset, type DatasetOptions, type DatasetRecord, loadDataset } from "./datasets/load.js";
export { type DemoOptions, type DemoResult, runDemo } from "./demo/run.js";
export { METRICS, type Metric } from "./distances/metric.js";
export { type ErrorCode, LoramixError } from "./errors.js";
export { type OpenBackendOptions, openBackend } from "./eval/backends.js";
export { type EvalResult, type EvaluateOptions, evaluate } from "./eval/evaluate.js";
export { type GenerateOptions, type GenerateResult, generateAdapter } from "./generate/generateAdapter.js";
export { type LooOptions, type LooResult, runLoo } from "./loo/runLoo.js";
export {
  MIX_MODES,
  type MixMode,
  type MixOptions,
  type MixResult,
  mixAdapters,
} from "./merge/mixAdapters.js";
export { PROFILE_SIDES, type Profile, type ProfileSide, profileRecords } from "./profiles/profile.js";
export { type TrainLoraOptions, type TrainLoraResult, trainLora } from "./train/trainLora.js";
export type { ProgressEvent, ProgressSink } from "./util/progress.js";
export { trainBankMlp } from "./weights/bankMlp.js";
export { WEIGHT_METHODS, type WeightMethod } from "./weights/methods.js";
