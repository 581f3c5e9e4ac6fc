import { throwIfAborted } from "../errors.js";
import { LlamaBackend, type LlamaBackendOptions } from "../eval/llamaBackend.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { endTokenId } from "../train/examples.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/**
 * Candidate losses with llama.cpp on this machine: the base model is loaded once and each
 * candidate is applied as a LoRA in its own context (converted to a temporary GGUF when it is a
 * PEFT directory), freed once scored, so no copy of the model is made per candidate and any base
 * model llama.cpp runs can be scored.
 */
export class LlamaScorer implements CandidateScorer {
  readonly name: string;

  private constructor(
    readonly backend: LlamaBackend,
    private readonly owned: boolean,
  ) {
    this.name = backend.name;
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

  static async open(options: LlamaBackendOptions): Promise<LlamaScorer> {
    return new LlamaScorer(await LlamaBackend.load(options), true);
  }

  /** Scores with a backend the caller keeps (and disposes). */
  static over(backend: LlamaBackend): LlamaScorer {
    return new LlamaScorer(backend, false);
  }

  async losses(
    adapter: string | null,
    examples: readonly ScoreExample[],
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<Float64Array> {
    const context =
      adapter === null ? await this.backend.baseContext() : await this.backend.withAdapter(adapter);
    try {
      const out = new Float64Array(examples.length);
      for (const [i, e] of examples.entries()) {
        throwIfAborted(signal);
        const logProbs = await context.tokenLogProbs(Array.from(e.ids), e.outputStart);
        let sum = 0;
        for (const lp of logProbs) sum -= lp;
        out[i] = sum / logProbs.length;
      }
      return out;
    } finally {
      if (adapter !== null) await this.backend.releaseAdapter(adapter);
    }
  }

  async dispose(): Promise<void> {
    if (this.owned) await this.backend.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
