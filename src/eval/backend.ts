import type { TokenCounter } from "../tokenizers/fitPrompt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";

/**
 * What the evaluation loop needs from an inference engine: greedy continuation of a raw prompt
 * (SPEC §6: no chat template, stop at EOS or after `maxNewTokens`).
 */
export interface CompletionOptions {
  /** SPEC §6 (paper: 256). */
  maxNewTokens?: number;
  signal?: AbortSignal;
}

export interface Generation {
  text: string;
  /** Number of generated tokens (the EOS not counted). */
  tokens: number;
  /** Generated token ids, when the backend sees them (an OpenAI-compatible server returns text only). */
  ids?: number[];
  stoppedBy: "eos" | "length";
}

export interface InferenceBackend extends AsyncDisposable {
  /** e.g. "llama.cpp:<model file>+<adapter>", for reports. */
  readonly name: string;
  /** The end token's text when the backend knows the tokenizer (src/eval/endText.ts cuts there). */
  readonly endText?: string | null;
  /** The tokenizer that turns prompts into the ids the model sees, when the backend has one. */
  readonly tokenizer?: Tokenizer;
  /** Tokens of prompt plus generation the backend holds, when known (the context rule needs it). */
  readonly contextSize?: number;
  /** Tokens of a prompt (BOS included) counted by the backend itself, when it has no `tokenizer` (a server's /tokenize). */
  readonly countTokens?: TokenCounter;
  generate(prompt: string, options?: CompletionOptions): Promise<Generation>;
  dispose(): Promise<void>;
}
