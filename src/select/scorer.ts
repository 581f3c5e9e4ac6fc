import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { TrainExample } from "../train/examples.js";

/** What a scorer needs of an example: BOS + prompt + output ids, and where the output starts. */
export type ScoreExample = Pick<TrainExample, "ids" | "outputStart">;

/**
 * Scores adapters by the mean cross-entropy (natural log) of the output tokens of examples
 * (SPEC §7 "candidate loss"). Implementations: llama.cpp on this machine, or an OpenAI-compatible
 * server that returns prompt log-probabilities. Lower is better. A scorer knows the tokenizer and
 * end token its examples must be built with (`scoreExamples`), and how long they may be.
 */
export interface CandidateScorer extends AsyncDisposable {
  readonly name: string;
  readonly tokenizer: Tokenizer;
  /** The end token appended to every scored output, as training appends it. */
  readonly eosId: number;
  /** Tokens one scored sequence may hold. */
  readonly contextSize: number;
  /** Whether examples sharing a prompt prefix cost it once (`scoringTokens` counts what is evaluated). */
  readonly reusesPrefix: boolean;
  /** Seconds spent turning adapters into the form the scorer applies (llama.cpp: PEFT to GGUF). */
  readonly convertSeconds?: number;
  /**
   * Per example, the mean over ids[outputStart..] of −ln p(id | the ids before it), under the base
   * model with the PEFT adapter directory `adapter` (null: the base model alone).
   */
  losses(
    adapter: string | null,
    examples: readonly ScoreExample[],
    options?: { signal?: AbortSignal },
  ): Promise<Float64Array>;
  /** Tells the scorer that `adapter` will not be scored again (its folder is about to go). */
  release?(adapter: string): Promise<void>;
  dispose(): Promise<void>;
}
