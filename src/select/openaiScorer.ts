import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { LoramixError, throwIfAborted } from "../errors.js";
import { OpenAIBackend, type OpenAIBackendOptions } from "../eval/openaiBackend.js";
import type { RequestLimits } from "../eval/serverClient.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/**
 * Candidate losses on an OpenAI-compatible server that returns prompt log-probabilities: vLLM's
 * completions API with `echo: true, max_tokens: 0, logprobs: 0` answers the prompt's own tokens
 * with `choices[0].logprobs.token_logprobs` (None for the first; vllm/entrypoints/openai/
 * serving_completion.py request_output_to_completion_response, max_tokens == 0 branch; protocol.py
 * to_sampling_params turns `echo` + `logprobs` into prompt_logprobs). Each
 * candidate is loaded under a name of its own with `POST /v1/load_lora_adapter {lora_name,
 * lora_path}` and unloaded after (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, on the same
 * file system). llama-server ignores `echo` and returns no prompt log-probabilities (the release
 * node-llama-cpp ships never calls server-common.cpp's refusal), so it cannot score: that is said
 * in one line.
 */
export class OpenAIScorer implements CandidateScorer {
  readonly name: string;
  private readonly client: OpenAIBackend;
  readonly tokenizer: Tokenizer;
  readonly eosId: number;
  readonly contextSize: number;
  /** A server's prompt cache is its own affair: every token is counted. */
  readonly reusesPrefix = false;

  /**
   * The server tokenizes nothing: examples are built with `tokenizer` (the bank's, which must be
   * the served model's) and sent as ids; a server does not say its context, so it is given.
   */
  constructor(
    private readonly options: OpenAIBackendOptions,
    sequences: Pick<CandidateScorer, "tokenizer" | "eosId" | "contextSize">,
  ) {
    this.client = new OpenAIBackend(options);
    this.name = this.client.name;
    this.tokenizer = sequences.tokenizer;
    this.eosId = sequences.eosId;
    this.contextSize = sequences.contextSize;
  }

  async losses(
    adapter: string | null,
    examples: readonly ScoreExample[],
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<Float64Array> {
    const model = adapter === null ? this.options.model : loraName(adapter);
    if (adapter !== null) {
      await this.call(
        "load_lora_adapter",
        { lora_name: model, lora_path: resolve(adapter) },
        signal,
        () =>
          "the server cannot load adapters at run time (vLLM: start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora)",
      );
    }
    try {
      return Float64Array.from(await Promise.all(examples.map((e) => this.exampleLoss(model, e, signal))));
    } finally {
      if (adapter !== null) {
        await this.call(
          "unload_lora_adapter",
          { lora_name: model },
          signal,
          () => "the server did not unload the adapter",
        );
      }
    }
  }

  private async exampleLoss(
    model: string,
    e: ScoreExample,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    throwIfAborted(signal);
    const ids = Array.from(e.ids);
    const text = await this.call(
      "completions",
      { model, prompt: ids, max_tokens: 0, echo: true, logprobs: 0, temperature: 0 },
      signal,
      (message) =>
        `the server cannot return prompt log-probabilities (${message}); score with llama.cpp instead`,
      { returned: ids.length },
    );
    let logprobs: unknown;
    try {
      logprobs = (JSON.parse(text) as { choices?: { logprobs?: { token_logprobs?: unknown } }[] })
        .choices?.[0]?.logprobs?.token_logprobs;
    } catch {
      logprobs = undefined;
    }
    if (!Array.isArray(logprobs) || logprobs.length !== ids.length) {
      throw new LoramixError(
        "BACKEND",
        `${this.name}: the server returned no log-probability per prompt token (expected ${ids.length}); it cannot score candidates, score with llama.cpp instead`,
      );
    }
    let sum = 0;
    for (let t = e.outputStart; t < ids.length; t++) {
      const lp = logprobs[t];
      if (typeof lp !== "number")
        throw new LoramixError("BACKEND", `${this.name}: no log-probability for prompt token ${t}`);
      if (!(Number.isFinite(lp) && lp <= 0))
        throw new LoramixError(
          "BACKEND",
          `${this.name}: the server returned the log-probability ${lp} for prompt token ${t}; a log-probability is finite and ≤ 0`,
        );
      sum -= lp;
    }
    return sum / (ids.length - e.outputStart);
  }

  /** A POST whose refusal (HTTP 4xx) is reworded by `explain`, so the user reads what to do. */
  private async call(
    path: string,
    body: Record<string, unknown>,
    signal: AbortSignal | undefined,
    explain: (message: string) => string,
    limits?: RequestLimits,
  ): Promise<string> {
    try {
      return await this.client.post(path, body, signal, limits);
    } catch (error) {
      if (error instanceof LoramixError && error.code === "BACKEND" && /HTTP 4\d\d/.test(error.message))
        throw new LoramixError("BACKEND", `${this.name}: ${explain(error.message)}`, { cause: error });
      throw error;
    }
  }

  async dispose(): Promise<void> {}

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/** One served name per adapter directory, so that concurrent loramix runs do not collide. */
function loraName(adapter: string): string {
  return `loramix-${createHash("sha256").update(resolve(adapter)).digest("hex").slice(0, 16)}`;
}
