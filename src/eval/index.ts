/** `loramix/eval`: inference backends (llama.cpp, OpenAI-compatible servers) and the Rouge-L / exact-match evaluation. */
export type { CompletionOptions, Generation, InferenceBackend } from "./backend.js";
export { BACKEND_KINDS, type BackendKind, type OpenBackendOptions, openBackend } from "./backends.js";
export {
  type EvalMetrics,
  type EvalRecord,
  type EvalResult,
  type EvaluateOptions,
  evaluate,
  METRICS_FILE,
  PREDICTIONS_FILE,
} from "./evaluate.js";
export { LlamaAdapterBackend, LlamaBackend, type LlamaBackendOptions } from "./llamaBackend.js";
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
} from "./metrics.js";
export { OpenAIBackend, type OpenAIBackendOptions, type ServerDescription } from "./openaiBackend.js";
export { porterStem } from "./porter.js";
export {
  defaultTimeoutMs,
  type RequestLimits,
  responseCap,
  ServerClient,
  type ServerClientOptions,
} from "./serverClient.js";
