import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { LoramixError, throwIfAborted } from "../errors.js";
import { LlamaBackend, type LlamaBackendOptions } from "../eval/llamaBackend.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { endTokenId } from "../train/examples.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/** The smallest positive float32 (subnormal): what a probability that underflowed was at most. */
const MIN_FLOAT32 = 1.401298464324817e-45;

/**
 * Tokens at the start of `e` already in a sequence that holds `previous`: their common prefix, up
 * to the token before the first answer token at most (its probability needs that token evaluated
 * with the example).
 */
function reusable(previous: ScoreExample | undefined, e: ScoreExample): number {
  if (previous === undefined) return 0;
  const limit = Math.min(previous.ids.length, e.outputStart - 1);
  let k = 0;
  while (k < limit && previous.ids[k] === e.ids[k]) k++;
  return k;
}

/**
 * Tokens llama.cpp evaluates to score `examples` in one context, as `LlamaScorer` does: each
 * example after what it shares with the one before (when `reusesPrefix`), without its last token
 * (predicted, never evaluated). The schedule spends its budget in these tokens.
 */
export function scoringTokens(examples: readonly ScoreExample[], reusesPrefix: boolean): number {
  let tokens = 0;
  for (const [i, e] of examples.entries()) {
    tokens += e.ids.length - 1 - (reusesPrefix ? reusable(examples[i - 1], e) : 0);
  }
  return tokens;
}

/** The tokens every example starts with (up to the first answer token's position): what is evaluated once. */
export function sharedPrefix(examples: readonly ScoreExample[]): number {
  if (examples.length === 0) return 0;
  let n = (examples[0] as ScoreExample).ids.length;
  for (const e of examples) n = Math.min(n, reusable(examples[0], e));
  return n;
}

/**
 * Candidate losses with llama.cpp on this machine. The base model is loaded once; each candidate is
 * applied as a LoRA in a context of its own (a PEFT directory converted to a GGUF once per run),
 * freed once scored, so no copy of the model is made per candidate and any base model llama.cpp
 * runs can be scored. Within a context, each example reuses the cache of the prompt prefix it
 * shares with the one before (a Super-NI definition and its examples: most of every prompt) and
 * only its remaining tokens are evaluated. One sequence per context: node-llama-cpp 3.21.1 reads
 * some of the probabilities of sequences evaluated side by side from another batch's logits
 * (measured: the same 32 examples gave 0.386, 2.81 or 2.71 nats on 8 sequences, 0.386 always on one).
 */
export class LlamaScorer implements CandidateScorer {
  readonly name: string;
  readonly reusesPrefix = true;

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

  get convertSeconds(): number {
    return this.backend.convertSeconds;
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
    const context = await this.backend.context(file);
    try {
      const sequence = context.getSequence();
      const out = new Float64Array(examples.length);
      for (const [i, e] of examples.entries()) {
        throwIfAborted(signal);
        out[i] = await exampleLoss(sequence, e, reusable(examples[i - 1], e));
      }
      return out;
    } finally {
      await context.dispose();
    }
  }

  /** Forgets the GGUF converted for a mixture whose folder is gone. */
  async release(adapter: string): Promise<void> {
    await this.backend.forgetAdapterFile(adapter);
  }

  async dispose(): Promise<void> {
    if (this.owned) await this.backend.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * The mean of −ln p(ids[t] | ids[..t]) over the answer tokens, evaluating the example after the
 * first `shared` tokens, which the sequence already holds (softmax of llama.cpp's raw logits; a token whose
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
