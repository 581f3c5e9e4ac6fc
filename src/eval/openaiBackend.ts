import { LoramixError, option, usageError } from "../errors.js";
import type { TokenCounter } from "../tokenizers/fitPrompt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { CompletionOptions, Generation, InferenceBackend } from "./backend.js";
import { type RequestLimits, ServerClient, type ServerClientOptions, serverMessage } from "./serverClient.js";
import { TokenBudget } from "./tokenBudget.js";

export interface OpenAIBackendOptions extends ServerClientOptions {
  /** The served model name: with vLLM, the LoRA's name from --lora-modules NAME=PATH. */
  model: string;
  /**
   * llama-server's per-request adapters (tools/server/server-schema.cpp, field "lora": `[{id,
   * scale}]`; adapters not listed get scale 0). vLLM selects a LoRA by `model` instead.
   */
  lora?: { id: number; scale: number }[];
  /**
   * The served model's tokenizer, when loramix has it: prompts are fitted to the context with it
   * and predictions end at its end text, as with llama.cpp.
   */
  tokenizer?: Tokenizer;
  /**
   * Send the prompt as `tokenizer`'s ids (BOS + ids), which both servers accept as `prompt: [ids]`
   * (llama.cpp server-common.cpp tokenize_mixed; vLLM's completions API), so a server tokenizes
   * nothing and every backend sees the same ids.
   */
  promptIds?: boolean;
  /** The server's context in tokens (prompt plus answer); by default what the server says (`describe`). */
  contextSize?: number;
  /** Fields merged into every request body last (other servers' options). */
  extraBody?: Record<string, unknown>;
}

/** What a server says about itself, read by `describe`. */
export interface ServerDescription {
  kind: "llama-server" | "vllm" | "unknown";
  /** Tokens per request (llama-server: a slot's n_ctx; vLLM: max_model_len), null when not said. */
  contextSize: number | null;
  /** The end token's text (llama-server's /props eos_token), null when not said. */
  endText: string | null;
}

/**
 * Greedy completions from an OpenAI-compatible server (`POST {baseUrl}/completions`, temperature 0,
 * the record's input as the raw prompt). The API returns text only, so `ids` is empty and
 * `tokens` is the server's `usage.completion_tokens` (0 when it does not report usage).
 * `OpenAIBackend.connect` also asks the server for its context, end text and tokenizer.
 */
export class OpenAIBackend implements InferenceBackend {
  readonly name: string;
  readonly tokenizer: Tokenizer | undefined;
  contextSize: number | undefined;
  endText: string | null;
  /** The server's /tokenize, when loramix has no tokenizer of its own and the server has one. */
  countTokens: TokenCounter | undefined;
  private readonly client: ServerClient;
  /**
   * llama-server's slots share one KV cache of its n_ctx cells when it chose the number of slots
   * itself (server.cpp: "n_parallel is set to auto, using n_parallel = 4 and kv_unified = true"), so
   * requests whose prompts and answers together pass n_ctx fail with "Context size has been
   * exceeded" (HTTP 500). Requests in flight are therefore kept within that many tokens.
   */
  private budget: TokenBudget | undefined;

  constructor(private readonly options: OpenAIBackendOptions) {
    const { model, tokenizer, promptIds, contextSize } = options;
    this.client = new ServerClient(options);
    if (model === "") throw usageError("the OpenAI backend needs a model name");
    if (promptIds && tokenizer === undefined)
      throw usageError('token-id prompts need the model\'s tokenizer (tokenizer.json or "mistral")');
    if (contextSize !== undefined && !(Number.isInteger(contextSize) && contextSize >= 2))
      throw usageError(`context size must be an integer >= 2, got ${contextSize}`);
    this.name = `openai:${model}@${this.client.redact(options.baseUrl)}`;
    this.tokenizer = tokenizer;
    this.contextSize = contextSize;
    this.endText = tokenizer?.eosText ?? null;
  }

  /** A backend that has asked the server what it knows (`describe`). */
  static async connect(options: OpenAIBackendOptions, { signal }: { signal?: AbortSignal } = {}) {
    const backend = new OpenAIBackend(options);
    await backend.describe({ signal });
    return backend;
  }

  /**
   * Asks the server for what loramix does not know yet: the context (llama-server's `GET /props`
   * default_generation_settings.n_ctx, a slot's context; vLLM's `GET /v1/models` max_model_len of
   * the served model), the end text (/props eos_token) and, without a local tokenizer, its
   * `POST /tokenize` to fit prompts with (llama-server tools/server/server-context.cpp
   * get_res_props, post_tokenize; vLLM's serving_tokenization.py). A given context larger than
   * the server's is refused.
   */
  async describe({ signal }: { signal?: AbortSignal } = {}): Promise<ServerDescription> {
    const described = await this.ask(signal);
    const given = this.options.contextSize;
    if (given !== undefined && described.contextSize !== null && given > described.contextSize)
      throw usageError(
        `${this.name}: a context of ${given} tokens is more than the server's ${described.contextSize}`,
      );
    this.contextSize ??= described.contextSize ?? undefined;
    if (described.kind === "llama-server" && described.contextSize !== null)
      this.budget = new TokenBudget(described.contextSize);
    this.endText ??= described.endText;
    if (this.tokenizer === undefined) this.countTokens = this.serverCounter(described.kind);
    return described;
  }

  private async ask(signal: AbortSignal | undefined): Promise<ServerDescription> {
    const props = await this.getJson("/props", signal);
    const settings = (props as { default_generation_settings?: { n_ctx?: unknown } } | null)
      ?.default_generation_settings;
    if (settings !== undefined) {
      const eos = (props as { eos_token?: unknown }).eos_token;
      return {
        kind: "llama-server",
        contextSize: positiveInt(settings.n_ctx),
        endText: typeof eos === "string" && eos !== "" ? eos : null,
      };
    }
    const models = (await this.getJson("models", signal)) as { data?: unknown } | null;
    const data = Array.isArray(models?.data) ? (models.data as Record<string, unknown>[]) : [];
    const entry = data.find((m) => m?.id === this.options.model) ?? (data.length === 1 ? data[0] : undefined);
    const vllm = positiveInt(entry?.max_model_len);
    return {
      kind: vllm === null ? "unknown" : "vllm",
      contextSize: vllm ?? positiveInt((entry?.meta as { n_ctx?: unknown } | undefined)?.n_ctx),
      endText: null,
    };
  }

  /** A GET answered with JSON, or null when the server has no such route or does not answer JSON. */
  private async getJson(path: string, signal: AbortSignal | undefined): Promise<unknown> {
    let text: string;
    try {
      text = await this.client.get(path, { signal });
    } catch (error) {
      if (error instanceof Error && /: HTTP 4\d\d /.test(error.message)) return null;
      throw error;
    }
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  private serverCounter(kind: ServerDescription["kind"]): TokenCounter | undefined {
    if (kind === "unknown") return undefined;
    const model = this.options.model;
    return async (text, signal) => {
      const body =
        kind === "llama-server"
          ? { content: text, add_special: true }
          : { model, prompt: text, add_special_tokens: true };
      let answer: string;
      try {
        answer = await this.client.post("/tokenize", body, {
          signal,
          // BOS and at most one token per character.
          returned: text.length + 1,
        });
      } catch (error) {
        if (!(error instanceof LoramixError) || error.code !== "BACKEND") throw error;
        // llama-server fails this way on a vocabulary without byte fallback (TinyStories').
        const t = option("tokenizer");
        throw this.client.fail(
          `${error.message}: the server cannot count a prompt's tokens; give ${t.text} (the model's tokenizer.json)`,
          [t],
        );
      }
      let tokens: unknown;
      try {
        tokens = (JSON.parse(answer) as { tokens?: unknown }).tokens;
      } catch {
        tokens = undefined;
      }
      if (!Array.isArray(tokens))
        throw this.client.fail(
          `${this.client.url("/tokenize")}: the answer has no tokens: ${serverMessage(answer)}`,
        );
      return tokens.length;
    };
  }

  async generate(
    prompt: string,
    { maxNewTokens = 256, signal }: CompletionOptions = {},
  ): Promise<Generation> {
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
      throw usageError(`maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
    const { tokenizer, promptIds } = this.options;
    const ids = tokenizer?.encode(prompt, { bos: true });
    // Without a tokenizer the prompt's size is unknown: it takes the whole budget.
    const held = await this.budget?.take((ids?.length ?? Number.POSITIVE_INFINITY) + maxNewTokens, signal);
    try {
      const body = await this.post(
        "completions",
        this.body(promptIds && ids ? ids : prompt, maxNewTokens),
        signal,
        {
          generated: maxNewTokens,
        },
      );
      return this.parseCompletion(body);
    } finally {
      if (held !== undefined) this.budget?.give(held);
    }
  }

  /**
   * POSTs JSON to `{baseUrl}/{path}` with this backend's concurrency limit, retries, timeout and
   * response cap (from `limits`: what the request asks for); returns the response body. Also used
   * to score and to load adapters on the server.
   */
  post(
    path: string,
    body: Record<string, unknown>,
    signal?: AbortSignal,
    limits: RequestLimits = {},
  ): Promise<string> {
    return this.client.post(path, body, { signal, ...limits });
  }

  /**
   * The request body. llama-server reuses a slot's prompt cache across a `POST /lora-adapters`
   * switch (server-context.cpp launch_slot_with_task clears it only for a per-request "lora"
   * change), so without `lora` loramix asks it not to cache; vLLM ignores the unknown field. The
   * end text is sent as a stop string, so the server stops where the prediction is cut anyway.
   */
  private body(prompt: string | number[], maxNewTokens: number): Record<string, unknown> {
    const { model, lora, extraBody } = this.options;
    return {
      model,
      prompt,
      max_tokens: maxNewTokens,
      temperature: 0,
      stream: false,
      ...(lora ? { lora } : { cache_prompt: false }),
      ...(this.endText ? { stop: [this.endText] } : {}),
      ...extraBody,
    };
  }

  private parseCompletion(body: string): Generation {
    const url = this.client.url("completions");
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw this.client.fail(`${url}: the response is not JSON: ${serverMessage(body)}`);
    }
    const choice = (json as { choices?: unknown })?.choices;
    const first = Array.isArray(choice)
      ? (choice[0] as { text?: unknown; finish_reason?: unknown })
      : undefined;
    if (typeof first?.text !== "string")
      throw this.client.fail(`${url}: the response has no choices[0].text: ${serverMessage(body)}`);
    const usage = (json as { usage?: { completion_tokens?: unknown } }).usage;
    const tokens = typeof usage?.completion_tokens === "number" ? usage.completion_tokens : 0;
    return {
      text: first.text,
      tokens,
      ids: [],
      stoppedBy: first.finish_reason === "length" ? "length" : "eos",
    };
  }

  async dispose(): Promise<void> {}

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

function positiveInt(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : null;
}
