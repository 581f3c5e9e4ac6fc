import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";
import { LoramixError, throwIfAborted } from "../errors.js";
import { LlamaBackend, type LlamaBackendOptions } from "../eval/llamaBackend.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { endTokenId } from "../train/examples.js";
import { removeScratch, scratchDir } from "../util/scratch.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/**
 * Sequences scored side by side in one context: llama.cpp's CPU matrix products need batches of a
 * few hundred tokens to run at full speed (64-token batches ran at under half the rate of 512 on a
 * Mistral-7B-shaped model), and examples that share a prompt prefix leave only short suffixes.
 * Each sequence holds `contextSize` tokens of cache: 8 × 512 tokens of Mistral-7B are 512 MB.
 */
export const SCORING_SEQUENCES = 8;

/** A shared prefix shorter than this is evaluated with each example: copying its cache costs more. */
export const MIN_SHARED_PREFIX = 32;

/** The smallest positive float32 (subnormal): what a probability that underflowed was at most. */
const MIN_FLOAT32 = 1.401298464324817e-45;

/**
 * Tokens llama.cpp evaluates to score `examples` in one context, as `LlamaScorer` does: the shared
 * prefix once (when `reusesPrefix` and it is long enough), then each example's remaining tokens
 * (the last token is predicted, never evaluated). The schedule spends its budget in these tokens.
 */
export function scoringTokens(examples: readonly ScoreExample[], reusesPrefix: boolean): number {
  const shared = reusesPrefix ? sharedPrefix(examples) : 0;
  let tokens = shared;
  for (const e of examples) tokens += e.ids.length - 1 - shared;
  return tokens;
}

/**
 * The tokens every example starts with, up to the first answer token's position at most (its
 * probability needs the token before it evaluated with the example); 0 when shorter than
 * MIN_SHARED_PREFIX or for a single example.
 */
export function sharedPrefix(examples: readonly ScoreExample[]): number {
  if (examples.length < 2) return 0;
  const first = examples[0] as ScoreExample;
  let n = Math.min(...examples.map((e) => e.outputStart - 1));
  for (const e of examples) {
    let k = 0;
    while (k < n && e.ids[k] === first.ids[k]) k++;
    n = k;
  }
  return n >= MIN_SHARED_PREFIX ? n : 0;
}

/**
 * Candidate losses with llama.cpp on this machine. The base model is loaded once; each candidate is
 * applied as a LoRA in a context of its own (a PEFT directory converted to a GGUF once per run),
 * freed once scored, so no copy of the model is made per candidate and any base model llama.cpp
 * runs can be scored. Within a context, the prompt prefix the examples share is evaluated once
 * and its cache copied to every sequence; the examples' remaining tokens are then evaluated on
 * SCORING_SEQUENCES sequences side by side, so that llama.cpp's batches stay large.
 */
export class LlamaScorer implements CandidateScorer {
  readonly name: string;
  readonly reusesPrefix = true;
  private scratch: Promise<string> | undefined;

  private constructor(
    readonly backend: LlamaBackend,
    private readonly owned: boolean,
  ) {
    this.name = backend.name;
  }

  static async open(options: LlamaBackendOptions): Promise<LlamaScorer> {
    return new LlamaScorer(await LlamaBackend.load(options), true);
  }

  /** Scores with a backend the caller keeps (and disposes). */
  static over(backend: LlamaBackend): LlamaScorer {
    return new LlamaScorer(backend, false);
  }

  get tokenizer(): Tokenizer {
    return this.backend.tokenizer;
  }

  get eosId(): number {
    return endTokenId(this.backend.eosId);
  }

  get contextSize(): number {
    return this.backend.contextSize;
  }

  async losses(
    adapter: string | null,
    examples: readonly ScoreExample[],
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<Float64Array> {
    for (const e of examples) {
      if (e.ids.length > this.contextSize)
        throw new LoramixError(
          "BACKEND",
          `${this.name}: an example of ${e.ids.length} tokens exceeds the context of ${this.contextSize}`,
        );
    }
    const file = adapter === null ? null : await this.backend.adapterFile(adapter);
    const context = await this.backend.context(
      file,
      Math.max(1, Math.min(SCORING_SEQUENCES, examples.length)),
    );
    try {
      return await this.scoreOn(context, examples, signal);
    } finally {
      await context.dispose();
    }
  }

  /** Forgets the GGUF converted for a mixture whose folder is gone. */
  async release(adapter: string): Promise<void> {
    await this.backend.forgetAdapterFile(adapter);
  }

  private async scoreOn(
    context: LlamaContext,
    examples: readonly ScoreExample[],
    signal: AbortSignal | undefined,
  ): Promise<Float64Array> {
    const sequences = Array.from({ length: context.totalSequences }, () => context.getSequence());
    const shared = sharedPrefix(examples);
    if (shared > 0) {
      const [first, ...rest] = sequences as [LlamaContextSequence, ...LlamaContextSequence[]];
      await first.evaluateWithoutGeneratingNewTokens(
        Array.from((examples[0] as ScoreExample).ids.subarray(0, shared)) as Token[],
      );
      if (rest.length > 0) {
        this.scratch ??= scratchDir("score");
        const state = join(await this.scratch, "prefix.state");
        await first.saveStateToFile(state);
        for (const s of rest) await s.loadStateFromFile(state, { acceptRisk: true });
        await rm(state, { force: true });
      }
    }
    const out = new Float64Array(examples.length);
    let next = 0;
    // Every sequence takes the next example as soon as it is free; node-llama-cpp puts the
    // sequences' pending tokens into one batch.
    await Promise.all(
      sequences.map(async (sequence) => {
        while (next < examples.length) {
          throwIfAborted(signal);
          const i = next++;
          out[i] = await exampleLoss(sequence, examples[i] as ScoreExample, shared);
        }
      }),
    );
    return out;
  }

  async dispose(): Promise<void> {
    if (this.scratch !== undefined) await removeScratch(await this.scratch);
    this.scratch = undefined;
    if (this.owned) await this.backend.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * The mean of −ln p(ids[t] | ids[..t]) over the answer tokens, evaluating the example after the
 * first `shared` tokens already in the sequence (softmax of llama.cpp's raw logits; a token whose
 * float32 probability underflows gets ln of the smallest float32, so the loss stays finite).
 */
async function exampleLoss(sequence: LlamaContextSequence, e: ScoreExample, shared: number): Promise<number> {
  if (sequence.nextTokenIndex > shared)
    await sequence.eraseContextTokenRanges([{ start: shared, end: sequence.nextTokenIndex }]);
  const ids = e.ids;
  const items = Array.from(ids.subarray(shared, ids.length - 1), (t, k) =>
    k + shared >= e.outputStart - 1
      ? ([t, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as const)
      : t,
  );
  const results = await sequence.controlledEvaluate(
    items as Parameters<LlamaContextSequence["controlledEvaluate"]>[0],
  );
  let sum = 0;
  for (let t = e.outputStart; t < ids.length; t++) {
    const probabilities = results[t - 1 - shared]?.next.probabilities;
    if (probabilities === undefined) throw new LoramixError("BACKEND", "llama.cpp returned no probabilities");
    sum -= Math.log(Math.max(probabilities.get(ids[t] as Token) ?? 0, MIN_FLOAT32));
  }
  return sum / (ids.length - e.outputStart);
}
