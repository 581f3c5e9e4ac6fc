import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { CompletionOptions, Generation, InferenceBackend } from "./backend.js";

export interface OpenAIBackendOptions {
  /** e.g. http://127.0.0.1:8000/v1 (vLLM with --enable-lora, llama-server, Ollama). */
  baseUrl: string;
  /** The served model name: with vLLM, the LoRA's name from --lora-modules NAME=PATH. */
  model: string;
  apiKey?: string;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Retries after a 429, a 5xx, a timeout or a network error (default 4). */
  retries?: number;
  /** First back-off delay; doubled after each failed attempt (default 1000 ms). */
  retryDelayMs?: number;
  /** Per attempt (default 300 s: a 7B model on a busy server writes 256 tokens slowly). */
  timeoutMs?: number;
  /**
   * llama-server's per-request adapters (tools/server/server-schema.cpp, field "lora": `[{id,
   * scale}]`; adapters not listed get scale 0). vLLM selects a LoRA by `model` instead.
   */
  lora?: { id: number; scale: number }[];
  /**
   * Send the prompt as token ids (BOS + the tokenizer's ids), which both servers accept as
   * `prompt: [ids]` (llama.cpp server-common.cpp tokenize_mixed; vLLM's completions API), so a
   * server tokenizes nothing and every backend sees the same ids.
   */
  promptTokenizer?: Tokenizer;
  /** Fields merged into every request body last (other servers' options). */
  extraBody?: Record<string, unknown>;
}

/** Longest server message kept in an error, so one line stays one line. */
const MAX_DETAIL = 300;
/** Longest wait a Retry-After header may impose. */
const MAX_RETRY_AFTER_MS = 60_000;

/** An attempt failed for a reason that may pass (overload, restart, network). */
class Transient extends Error {
  constructor(
    message: string,
    readonly waitMs?: number,
  ) {
    super(message);
  }
}

/**
 * Greedy completions from an OpenAI-compatible server (`POST {baseUrl}/completions`, temperature 0,
 * the record's input as the raw prompt). The API returns text only, so `ids` is empty and
 * `tokens` is the server's `usage.completion_tokens` (0 when it does not report usage).
 */
export class OpenAIBackend implements InferenceBackend {
  readonly name: string;
  private readonly root: string;
  private readonly url: string;
  private readonly concurrency: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly timeoutMs: number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly options: OpenAIBackendOptions) {
    const {
      baseUrl,
      model,
      concurrency = 4,
      retries = 4,
      retryDelayMs = 1000,
      timeoutMs = 300_000,
    } = options;
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw usageError(`base URL "${baseUrl}" is not a URL (e.g. http://127.0.0.1:8000/v1)`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw usageError(`base URL "${baseUrl}" must be http:// or https://`);
    if (model === "") throw usageError("the OpenAI backend needs a model name");
    for (const [name, value, min] of [
      ["concurrency", concurrency, 1],
      ["retries", retries, 0],
      ["retry delay", retryDelayMs, 0],
      ["timeout", timeoutMs, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min)
        throw usageError(`${name} must be an integer >= ${min}, got ${value}`);
    }
    this.root = baseUrl.replace(/\/+$/, "");
    this.url = `${this.root}/completions`;
    this.concurrency = concurrency;
    this.retries = retries;
    this.retryDelayMs = retryDelayMs;
    this.timeoutMs = timeoutMs;
    this.name = `openai:${model}@${baseUrl}`;
    this.tokenizer = options.promptTokenizer;
  }

  /** Set with token-id prompts: the ids sent are this tokenizer's. */
  readonly tokenizer: Tokenizer | undefined;

  async generate(
    prompt: string,
    { maxNewTokens = 256, signal }: CompletionOptions = {},
  ): Promise<Generation> {
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
      throw usageError(`maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
    const body = await this.post("completions", this.body(prompt, maxNewTokens), signal);
    return parseCompletion(this.url, body);
  }

  /**
   * POSTs JSON to `{baseUrl}/{path}` with this backend's concurrency limit, retries and timeout;
   * returns the response body. Also used to score and to load adapters on the server.
   */
  async post(path: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<string> {
    await this.acquire(signal);
    try {
      return await this.withRetries(`${this.root}/${path}`, JSON.stringify(body), signal);
    } finally {
      this.release();
    }
  }

  private async withRetries(url: string, body: string, signal: AbortSignal | undefined): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      try {
        return await this.attempt(url, body, signal);
      } catch (error) {
        if (!(error instanceof Transient)) throw error;
        if (attempt >= this.retries) {
          const tries = attempt + 1;
          throw new LoramixError(
            "BACKEND",
            `${url}: ${error.message} (${tries} attempt${tries > 1 ? "s" : ""})`,
          );
        }
        await sleep(error.waitMs ?? this.retryDelayMs * 2 ** attempt, signal);
      }
    }
  }

  private async attempt(url: string, body: string, signal: AbortSignal | undefined): Promise<string> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
        },
        body,
        signal: combined,
      });
      text = await response.text();
    } catch (error) {
      throwIfAborted(signal);
      if (timeout.aborted) throw new Transient(`no response within ${this.timeoutMs} ms`);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new Transient(
        `cannot reach the server: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
      );
    }
    if (!response.ok) {
      const detail = `HTTP ${response.status} ${response.statusText}: ${serverMessage(text)}`.trim();
      if (response.status === 429 || response.status >= 500)
        throw new Transient(detail, retryAfterMs(response.headers.get("retry-after")));
      throw new LoramixError("BACKEND", `${url}: ${detail} (model "${this.options.model}")`);
    }
    return text;
  }

  /**
   * The request body. llama-server reuses a slot's prompt cache across a `POST /lora-adapters`
   * switch (server-context.cpp launch_slot_with_task clears it only for a per-request "lora"
   * change), so without `lora` loramix asks it not to cache; vLLM ignores the unknown field.
   */
  private body(prompt: string, maxNewTokens: number): Record<string, unknown> {
    const { model, lora, promptTokenizer, extraBody } = this.options;
    return {
      model,
      prompt: promptTokenizer ? promptTokenizer.encode(prompt, { bos: true }) : prompt,
      max_tokens: maxNewTokens,
      temperature: 0,
      stream: false,
      ...(lora ? { lora } : { cache_prompt: false }),
      ...extraBody,
    };
  }

  private acquire(signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal);
    if (this.inFlight < this.concurrency) {
      this.inFlight++;
      return Promise.resolve();
    }
    // The slot is handed over by release(), so inFlight never exceeds the limit.
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }

  async dispose(): Promise<void> {}

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

function parseCompletion(url: string, body: string): Generation {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new LoramixError("BACKEND", `${url}: the response is not JSON: ${serverMessage(body)}`);
  }
  const choice = (json as { choices?: unknown })?.choices;
  const first = Array.isArray(choice)
    ? (choice[0] as { text?: unknown; finish_reason?: unknown })
    : undefined;
  if (typeof first?.text !== "string")
    throw new LoramixError("BACKEND", `${url}: the response has no choices[0].text: ${serverMessage(body)}`);
  const usage = (json as { usage?: { completion_tokens?: unknown } }).usage;
  const tokens = typeof usage?.completion_tokens === "number" ? usage.completion_tokens : 0;
  return {
    text: first.text,
    tokens,
    ids: [],
    stoppedBy: first.finish_reason === "length" ? "length" : "eos",
  };
}

/** The server's own message when it sent OpenAI's error shape, else the body, cut to one short line. */
function serverMessage(body: string): string {
  let message = body;
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof json.error === "string" ? json.error : (json.error?.message ?? json.message);
    if (typeof m === "string") message = m;
  } catch {
    // Not JSON: the raw body is the best description there is.
  }
  message = message.replace(/\s+/g, " ").trim();
  return message.length > MAX_DETAIL ? `${message.slice(0, MAX_DETAIL)}...` : message;
}

/** Retry-After in seconds (the HTTP-date form is rare from inference servers and is ignored). */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new LoramixError("ABORTED", "interrupted"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
