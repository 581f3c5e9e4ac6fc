/** loramix library API: everything the CLI does, importable. */

export { type AddEntryOptions, addEntry } from "./bank/add.js";
export { importLol, type LolImportResult } from "./bank/importLol.js";
export { type ImportOptions, type ImportResult, importSni } from "./bank/importSni.js";
export { type IndexResult, indexBank } from "./bank/indexBank.js";
export { type EntrySummary, listEntries } from "./bank/list.js";
export { SCHEMA_VERSION } from "./bank/schema.js";
export { Bank, type BankEntry, initBank, openBank, type ProfileSummary } from "./bank/store.js";
export { type VerifyProblem, type VerifyProblemKind, type VerifyReport, verifyBank } from "./bank/verify.js";
export { type HfToGgufOptions, type HfToGgufResult, hfToGguf } from "./convert/hfToGguf.js";
export {
  LLAMA_PROJECTIONS,
  type LlamaConfig,
  type LlamaDims,
  type LlamaProjection,
  permuteForRope,
  projectionShape,
  readLlamaConfig,
} from "./convert/llamaNames.js";
export { type PeftToGgufOptions, type PeftToGgufResult, peftToGguf } from "./convert/peftToGguf.js";
export {
  type Dataset,
  type DatasetFormat,
  type DatasetOptions,
  type DatasetRecord,
  loadDataset,
  type SplitName,
} from "./datasets/load.js";
export { SPLIT_NAMES } from "./datasets/record.js";
export { parseSniTask, type SniTask, sniPrompt, sniRecords } from "./datasets/sni.js";
export { hashSplit, splitOf } from "./datasets/split.js";
export { type DemoOptions, type DemoResult, runDemo, type TargetRow } from "./demo/run.js";
export { gapClosed, type ScoreGrid, variantSummary } from "./demo/tables.js";
export { type BinnedDensity, binnedDensity } from "./distances/binned.js";
export { jsDivergence } from "./distances/js.js";
export { klDivergence } from "./distances/kl.js";
export {
  type BankDistanceOptions,
  type BankDistances,
  bankDistanceMatrices,
  bankDistanceMatrix,
  bankProfiles,
  type DistanceBank,
} from "./distances/matrix.js";
export { type DistanceOptions, EPSILON, METRICS, type Metric, type MmdMode } from "./distances/metric.js";
export {
  KernelConvolver,
  MMD_SAMPLES,
  MMD_SCALES,
  mmdMultiscale,
  mmdSampled,
  multiscaleKernel,
  sampleProfile,
} from "./distances/mmd.js";
export {
  type DistanceMatrices,
  distanceMatrices,
  distancesToCandidates,
  type PairwiseOptions,
  pairwiseDistances,
} from "./distances/pairwise.js";
export { wassersteinOnIds } from "./distances/wasserstein.js";
export { type ErrorCode, LoramixError } from "./errors.js";
export type { GenerateOptions, Generation, InferenceBackend } from "./eval/backend.js";
export { BACKEND_KINDS, type BackendKind, type OpenBackendOptions, openBackend } from "./eval/backends.js";
export {
  type EvalMetrics,
  type EvalRecord,
  type EvalResult,
  type EvaluateOptions,
  evaluate,
  METRICS_FILE,
  PREDICTIONS_FILE,
} from "./eval/evaluate.js";
export { LlamaAdapterBackend, LlamaBackend, type LlamaBackendOptions } from "./eval/llamaBackend.js";
export {
  exactMatch,
  lcsLength,
  normalizeAnswer,
  type RougeScore,
  rougeL,
  rougeLMax,
  rougeTokens,
  type Summary,
  summarize,
} from "./eval/metrics.js";
export { OpenAIBackend, type OpenAIBackendOptions } from "./eval/openaiBackend.js";
export { porterStem } from "./eval/porter.js";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./formats/dtypes.js";
export {
  GGML_TYPES,
  type GgufMetadata,
  type GgufTensorToWrite,
  type GgufValue,
  type WriteGgufOptions,
  writeGguf,
} from "./formats/gguf.js";
export {
  type GgufFile,
  type GgufTensorInfo,
  parseGgufHeader,
  readGgufHeader,
  readGgufTensorF32,
} from "./formats/ggufRead.js";
export {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  type Adapter,
  type AdapterConfig,
  type AdapterLayout,
  compareLayouts,
  type LoraModule,
  loadAdapter,
  loraScaling,
  parseAdapterConfig,
  saveAdapter,
} from "./formats/peft.js";
export {
  DTYPE_SIZE,
  MAX_HEADER_LENGTH,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsHeader,
  SafetensorsReader,
  type TensorInfo,
  type TensorSpec,
  type TensorToWrite,
  type WritableDtype,
  type WriteOptions,
  writeSafetensors,
  writeSafetensorsStreaming,
} from "./formats/safetensors.js";
export { FLAT_EFFECTIVE, type Flatness, flatness } from "./generate/flatness.js";
export {
  type GenerateOptions as GenerateAdapterOptions,
  type GenerateResult,
  generateAdapter,
} from "./generate/generateAdapter.js";
export { type CandidateWeight, provenanceRecord } from "./generate/provenance.js";
export { type TargetSource, targetProfile } from "./generate/target.js";
export { type DeltaJob, type DeltaJobScores, deltaScores } from "./loo/deltaScores.js";
export {
  type LooConfiguration,
  type LooOptions,
  type LooResult,
  type LooRow,
  runLoo,
} from "./loo/runLoo.js";
export { gramScores, LOO_NUMBERS, type LooNumber, type LooScores } from "./loo/scores.js";
export {
  type AdapterComparison,
  type ComparisonSums,
  compareAdapters,
  compareModule,
  deltaInner,
  type ModuleFactors,
} from "./merge/compare.js";
export { type LowRankTerm, truncateLowRankSum } from "./merge/deltaSvd.js";
export {
  MIX_MODES,
  type MixMode,
  type MixOptions,
  type MixResult,
  mixAdapters,
} from "./merge/mixAdapters.js";
export { isSyntheticAdapter, SYNTHETIC_MARKER } from "./merge/sources.js";
export {
  denseCounts,
  PROFILE_SIDES,
  type Profile,
  type ProfiledRecord,
  type ProfileJson,
  type ProfileOptions,
  type ProfileSide,
  profileFromJson,
  profileRecords,
  profileText,
  profileToJson,
} from "./profiles/profile.js";
export { coefficientHeatmap, type Heatmap, heatmapColor } from "./report/heatmap.js";
export { crc32, encodePng } from "./report/png.js";
export {
  type Candidate,
  DEFAULT_NEAREST,
  lossCandidates,
  MIXTURE_TEMPERATURES,
} from "./select/candidates.js";
export { DEFAULT_FIT_TOP, DEFAULT_FIT_TRIALS, type FitResult, fitWeights } from "./select/fitWeights.js";
export { LlamaScorer } from "./select/llamaScorer.js";
export type { CandidateScorer, ScoreExample } from "./select/scorer.js";
export {
  DEFAULT_SCORE_EXAMPLES,
  type ScoredCandidate,
  type Selection as LossSelection,
  type SelectOptions,
  scoreExamples,
  selectByLoss,
} from "./select/selectByLoss.js";
export {
  SYNTH_LAYOUTS,
  type SynthBankResult,
  type SynthEntry,
  type SynthLayoutName,
  synthBank,
} from "./synth/synthBank.js";
export { analyzeSniDir, analyzeTask, type TaskAnswers } from "./testbed/analyze.js";
export {
  type BuildOptions,
  type BuildResult,
  buildTestbed,
  type TaskReference,
  type TaskTrainer,
  type TrainTaskOptions,
} from "./testbed/build.js";
export { majorityAnswer, majorityScore } from "./testbed/majority.js";
export { DEFAULT_TESTBED } from "./testbed/paths.js";
export { type Family, SELECTION_RULE, type Selection, selectTasks } from "./testbed/tasks.js";
export { contextRuleText, fitPrompt, fitRecords, promptBudget } from "./tokenizers/fitPrompt.js";
export { HuggingFaceTokenizer } from "./tokenizers/huggingface.js";
export { loadTokenizer } from "./tokenizers/load.js";
export { MistralTokenizer } from "./tokenizers/mistral.js";
export type { Tokenizer } from "./tokenizers/tokenizer.js";
export { AdamW, type AdamWOptions, clipGlobalNorm } from "./train/adamw.js";
export {
  type EvaluateLossOptions,
  type ExampleLoss,
  evaluateLoss,
  type LossResult,
} from "./train/evaluateLoss.js";
export {
  type Batch,
  buildExample,
  DEFAULT_MAX_LENGTH,
  DEFAULT_MAX_OUTPUT_TOKENS,
  type ExampleOptions,
  makeBatch,
  TRUNCATION_RULE,
  type TrainExample,
  truncationRule,
} from "./train/examples.js";
export { LlamaModel } from "./train/llamaModel.js";
export { type LlamaWeights, loadLlamaWeights } from "./train/llamaWeights.js";
export {
  initLora,
  type LoraPair,
  type LoraWeights,
  loraConfig,
  loraTensors,
  readLora,
} from "./train/lora.js";
export {
  TRAIN_DEFAULTS,
  type TrainLoraOptions,
  type TrainLoraResult,
  trainLora,
} from "./train/trainLora.js";
export type { ProgressEvent, ProgressSink } from "./util/progress.js";
export { attentionalWeights, type WeightOptions } from "./weights/attentional.js";
export { type EntryDistances, loadBankMlp, mlpKey, trainBankMlp } from "./weights/bankMlp.js";
export {
  type BankGram,
  bankGram,
  type GramMatrix,
  type GramOptions,
  type GramSource,
  gramKey,
  gramOfAdapters,
} from "./weights/gram.js";
export { gramMixtureLoss } from "./weights/gramLoss.js";
export { leaveOneOutWeights } from "./weights/leaveOneOut.js";
export { methodWeights, WEIGHT_METHODS, type WeightMethod } from "./weights/methods.js";
export {
  initMlp,
  type MlpMetadata,
  mlpForward,
  mlpFromBuffer,
  mlpToBuffer,
  type ScalarMlp,
  type TrainedMlp,
} from "./weights/mlp.js";
export { neuralWeights } from "./weights/neural.js";
export { normalizedWeights, Z_SCORE_CONVENTION, zScoreRow } from "./weights/normalized.js";
export { selectWeights } from "./weights/select.js";
export { softmin } from "./weights/softmin.js";
export { type TrainMlpOptions, trainScalarMlp } from "./weights/trainMlp.js";
