/** `loramix/tokenizers`: tokenizers (Mistral SentencePiece, Hugging Face tokenizer.json), a worker pool, prompt fitting. */
export {
  contextRuleText,
  fitPrompt,
  fitPromptBy,
  fitRecords,
  fitRecordsBy,
  promptBudget,
  type TokenCounter,
} from "./fitPrompt.js";
export { HuggingFaceTokenizer } from "./huggingface.js";
export { loadTokenizer } from "./load.js";
export { MistralTokenizer } from "./mistral.js";
export type { Tokenizer } from "./tokenizer.js";
