import { LoramixError, type OptionName, throwIfAborted, usageError } from "../errors.js";

export interface ServerClientOptions {
  /** e.g. http://127.0.0.1:8000/v1 (vLLM with --enable-lora, llama-server, Ollama). */
  baseUrl: string;
  apiKey?: string;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Retries after a 429, a 5xx, a refused or dropped connection (default 4); a timeout is final. */
  retries?: number;
  /** First back-off delay; doubled after each failed attempt (default 1000 ms). */
  retryDelayMs?: number;
  /** Per request, in ms (default: `defaultTimeoutMs` of the tokens the request asks for). */
  timeoutMs?: number;
  /** Told, at most once per quarter of the timeout, that a request has had no answer yet. */
  warn?: (message: string) => void;
}

/** What a request asks of the server, which bounds how long it may take and how much it may send. */
export interface RequestLimits {
  /** Tokens the server generates at most (sets the default timeout). */
  generated?: number;
  /** Tokens the response carries at most, generated and echoed (sets the cap on its body). */
  returned?: number;
}

/**
 * The default time a request may take: a minute before the first token (queueing and reading a
 * prompt of a few thousand tokens, which a 7B model on a laptop CPU does in well under a minute)
 * plus a quarter second per token asked for (4 tokens/s, the slowest such a server writes). A
 * server that has said nothing by then is stuck or overloaded; waiting longer is the user's call.
 */
export function defaultTimeoutMs(generated: number): number {
  return 60_000 + 250 * generated;
}

/**
 * The largest response body a request can justify: 1 MiB for the envelope (ids, usage, a
 * server's props) plus 1 KiB per token it carries, generous for a token's text or log-probability
 * entry in JSON. An answer of 256 tokens is at most 1.25 MiB; a larger one is refused unread.
 */
export function responseCap(returned: number): number {
  return 1024 * 1024 + 1024 * returned;
}

/** Longest server message kept in an error, so one line stays one line. */
const MAX_DETAIL = 300;
/** Longest wait a Retry-After header may impose. */
const MAX_RETRY_AFTER_MS = 60_000;
/** The CLI's flags for the options messages name. */
const TIMEOUT: OptionName = { text: "`timeoutMs`", flag: "--timeout" };
const API_KEY: OptionName = { text: "`apiKey`", flag: "--api-key-env" };

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
 * HTTP to an inference server, with what a server that misbehaves needs: a concurrency limit,
 * retries of what may pass, a timeout per request with a warning while one is slow, the caller's
 * abort signal on every request, a cap on the response body, no redirects, and no credentials in
 * URLs or messages (the API key, a Bearer token and a URL's user:password are redacted).
 */
export class ServerClient {
  /** The base URL without trailing slashes: relative paths are under it. */
  readonly baseUrl: string;
  /** The server's root (the base URL without a trailing /v1): llama-server's /props, /tokenize. */
  readonly root: string;
  private readonly concurrency: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private lastWarning = 0;

  constructor(private readonly options: ServerClientOptions) {
    const { baseUrl, concurrency = 4, retries = 4, retryDelayMs = 1000, timeoutMs } = options;
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw usageError(`base URL "${redactUrl(baseUrl)}" is not a URL (e.g. http://127.0.0.1:8000/v1)`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw usageError(`base URL "${redactUrl(baseUrl)}" must be http:// or https://`);
    if (parsed.username !== "" || parsed.password !== "")
      throw usageError(
        `base URL "${redactUrl(baseUrl)}" carries a user name or password, which loramix does not send (it would end up in messages and logs): give the key with ${API_KEY.text}`,
        [API_KEY],
      );
    for (const [name, value, min] of [
      ["concurrency", concurrency, 1],
      ["retries", retries, 0],
      ["retry delay", retryDelayMs, 0],
    ] as const) {
      if (!Number.isInteger(value) || value < min)
        throw usageError(`${name} must be an integer >= ${min}, got ${value}`);
    }
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0))
      throw usageError(`${TIMEOUT.text} must be a positive number, got ${timeoutMs}`, [TIMEOUT]);
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.root = this.baseUrl.replace(/\/v1$/, "");
    this.concurrency = concurrency;
    this.retries = retries;
    this.retryDelayMs = retryDelayMs;
  }

  /** `path` under the base URL, or under the server's root when it starts with "/". */
  url(path: string): string {
    return path.startsWith("/") ? `${this.root}${path}` : `${this.baseUrl}/${path}`;
  }

  /** POSTs JSON; returns the response body. */
  post(
    path: string,
    body: Record<string, unknown>,
    { signal, ...limits }: RequestLimits & { signal?: AbortSignal } = {},
  ): Promise<string> {
    return this.request("POST", this.url(path), JSON.stringify(body), limits, signal);
  }

  /** GETs a document; returns the response body. */
  get(path: string, { signal }: { signal?: AbortSignal } = {}): Promise<string> {
    return this.request("GET", this.url(path), undefined, {}, signal);
  }

  /** `text` without the API key, Bearer tokens or a URL's user:password. */
  redact(text: string): string {
    let out = text.replace(/\b(Bearer|Basic)\s+[^\s"',;]+/gi, "$1 ***");
    const key = this.options.apiKey;
    // A key of a few characters would redact ordinary words; it is no secret either.
    if (key !== undefined && key.length >= 4) out = out.replaceAll(key, "***");
    return redactUrl(out);
  }

  /** A LoramixError whose message is redacted (the server's own words may quote the key). */
  fail(message: string, options?: OptionName[]): LoramixError {
    return new LoramixError("BACKEND", this.redact(message), { options });
  }

  private async request(
    method: string,
    url: string,
    body: string | undefined,
    limits: RequestLimits,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    await this.acquire(signal);
    try {
      for (let attempt = 0; ; attempt++) {
        throwIfAborted(signal);
        try {
          return await this.attempt(method, url, body, limits, signal);
        } catch (error) {
          if (!(error instanceof Transient)) throw error;
          if (attempt >= this.retries) {
            const tries = attempt + 1;
            throw this.fail(`${url}: ${error.message} (${tries} attempt${tries > 1 ? "s" : ""})`);
          }
          await sleep(error.waitMs ?? this.retryDelayMs * 2 ** attempt, signal);
        }
      }
    } catch (error) {
      if (error instanceof LoramixError && error.code !== "ABORTED")
        throw new LoramixError(error.code, this.redact(error.message), { options: [...error.options] });
      throw error;
    } finally {
      this.release();
    }
  }

  private async attempt(
    method: string,
    url: string,
    body: string | undefined,
    { generated = 0, returned = generated }: RequestLimits,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const timeoutMs = this.options.timeoutMs ?? defaultTimeoutMs(generated);
    const cap = responseCap(returned);
    const started = performance.now();
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const slow = setInterval(() => this.slow(url, started, timeoutMs), Math.max(timeoutMs / 4, 500));
    const combined = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
    let received: number | null = null;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
        },
        body,
        signal: combined,
        // A redirect could send the prompts and the key to another server; it is said instead.
        redirect: "manual",
      });
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel();
        throw this.redirected(url, response);
      }
      received = 0;
      text = await readCapped(response, cap, (n) => {
        received = n;
      }).catch((error: unknown) => {
        if (error === TOO_LARGE)
          throw this.fail(
            `${url}: the response is larger than ${mib(cap)}, the most a reply of ${returned} token${returned === 1 ? "" : "s"} can need: the server misbehaves (loramix stopped reading)`,
          );
        throw error;
      });
    } catch (error) {
      if (error instanceof LoramixError) throw error;
      throwIfAborted(signal);
      if (timeout.signal.aborted)
        throw this.fail(
          `${url}: no answer within ${seconds(timeoutMs)} s: give a longer ${TIMEOUT.text} if the server is slow rather than stuck`,
          [TIMEOUT],
        );
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (error as Error).message;
      if (received !== null)
        throw new Transient(
          `the server closed the connection in the middle of its response (after ${received} bytes; ${why})`,
        );
      throw new Transient(`cannot reach the server: ${why}`);
    } finally {
      clearTimeout(timer);
      clearInterval(slow);
    }
    if (!response.ok) {
      const detail = `HTTP ${response.status} ${response.statusText}: ${serverMessage(text)}`.trim();
      if (response.status === 429 || response.status >= 500)
        throw new Transient(detail, retryAfterMs(response.headers.get("retry-after")));
      throw this.fail(`${url}: ${detail}`);
    }
    return text;
  }

  private redirected(url: string, response: Response): LoramixError {
    const location = response.headers.get("location");
    let target = location ?? "";
    try {
      target = new URL(target, url).href;
    } catch {
      // Not a URL: said as sent.
    }
    return this.fail(
      `${url}: HTTP ${response.status}: the server redirects to ${location === null ? "nowhere (no Location header)" : target}; loramix does not follow redirects (they can send the prompts and the key to another server): give that URL as the base URL if it is the server you mean`,
    );
  }

  /** One line while requests wait, however many are in flight: the first at a quarter of the timeout. */
  private slow(url: string, started: number, timeoutMs: number): void {
    const now = performance.now();
    if (this.options.warn === undefined || now - this.lastWarning < timeoutMs / 4 - 50) return;
    this.lastWarning = now;
    this.options.warn(
      this.redact(
        `${url}: no answer yet after ${seconds(now - started, 1)} s (loramix gives up at ${seconds(timeoutMs)} s)`,
      ),
    );
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
}

const TOO_LARGE = Symbol("too large");

/** The body as text, read as a stream and refused (TOO_LARGE) as soon as it passes `cap` bytes. */
async function readCapped(response: Response, cap: number, onBytes: (n: number) => void): Promise<string> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > cap) {
    await response.body?.cancel();
    throw TOO_LARGE;
  }
  if (response.body === null) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    n += chunk.byteLength;
    onBytes(n);
    // Leaving the loop cancels the stream, so the rest is never read.
    if (n > cap) throw TOO_LARGE;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, n).toString("utf8");
}

/** A URL's user:password (anywhere in a text) as ***. */
export function redactUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s"']*@/gi, "$1***@");
}

/** The server's own message when it sent OpenAI's error shape, else the body, cut to one short line. */
export function serverMessage(body: string): string {
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
  const s = Number(header);
  return Number.isFinite(s) && s >= 0 ? Math.min(s * 1000, MAX_RETRY_AFTER_MS) : undefined;
}

/** Seconds with up to `digits` decimals below 10 s, whole above. */
function seconds(ms: number, digits = 2): string {
  return ms < 10_000 ? String(Number((ms / 1000).toFixed(digits))) : String(Math.round(ms / 1000));
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
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
