/**
 * What the evaluation loop needs from an inference engine: greedy continuation of a raw prompt
 * (SPEC §6: no chat template, stop at EOS or after `maxNewTokens`).
 */
export interface GenerateOptions {
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
  generate(prompt: string, options?: GenerateOptions): Promise<Generation>;
  dispose(): Promise<void>;
}
