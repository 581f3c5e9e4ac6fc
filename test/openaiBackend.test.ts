import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { OpenAIBackend } from "../src/eval/openaiBackend.js";
import { defaultTimeoutMs } from "../src/eval/serverClient.js";
import { type Handler, sendCompletion, startFakeOpenAI } from "./helpers/fakeOpenAI.js";
import { startServer } from "./helpers/httpServer.js";

/** A tokenizer of one id per space-separated word (and BOS), without an end text of its own. */
const WORDS = { name: "words", spec: "words", vocabSize: 10, bosId: 1, eosText: null };

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function serve(handler: Handler) {
  const server = await startFakeOpenAI(handler);
  close = server.close;
  return server;
}

async function failure(promise: Promise<unknown>): Promise<LoramixError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoramixError);
  return error as LoramixError;
}

describe("OpenAI-compatible backend", () => {
  it("posts a greedy completion request and returns the text", async () => {
    const server = await serve((req, _n, res) =>
      sendCompletion(res, ` echo ${req.prompt.length}`, 4, "length"),
    );
    const backend = new OpenAIBackend({ baseUrl: `${server.baseUrl}/`, model: "task042", apiKey: "sk-test" });
    const out = await backend.generate("Input: hi\nOutput:", { maxNewTokens: 7 });
    expect(out).toEqual({ text: " echo 17", tokens: 4, ids: [], stoppedBy: "length" });
    const req = server.requests[0];
    expect(req).toMatchObject({
      model: "task042",
      prompt: "Input: hi\nOutput:",
      max_tokens: 7,
      temperature: 0,
    });
    expect(req?.headers.authorization).toBe("Bearer sk-test");
    expect(backend.name).toBe(`openai:task042@${server.baseUrl}/`);
  });

  it("retries after a 500 and after a 429", async () => {
    const server = await serve((_req, n, res) => {
      if (n === 0) res.writeHead(500).end("model is loading");
      else if (n === 1)
        res.writeHead(429, { "retry-after": "0" }).end(JSON.stringify({ error: { message: "slow down" } }));
      else sendCompletion(res, "ok", 1);
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", retryDelayMs: 5 });
    const out = await backend.generate("p");
    expect(out.text).toBe("ok");
    expect(out.stoppedBy).toBe("eos");
    expect(server.requests).toHaveLength(3);
  });

  it("gives up after the retries with the last server message", async () => {
    const server = await serve((_req, _n, res) => {
      res
        .writeHead(503, { "content-type": "application/json" })
        .end(JSON.stringify({ error: { message: "overloaded" } }));
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", retries: 2, retryDelayMs: 1 });
    const error = await failure(backend.generate("p"));
    expect(error.code).toBe("BACKEND");
    expect(error.message).toBe(
      `${server.baseUrl}/completions: HTTP 503 Service Unavailable: overloaded (3 attempts)`,
    );
    expect(server.requests).toHaveLength(3);
  });

  it("times out a request that never answers, without retrying it", async () => {
    const server = await serve(() => {
      // Never answers.
    });
    const backend = new OpenAIBackend({
      baseUrl: server.baseUrl,
      model: "m",
      timeoutMs: 150,
      retries: 1,
      retryDelayMs: 1,
    });
    const started = Date.now();
    const error = await failure(backend.generate("p"));
    expect(error.message).toBe(
      `${server.baseUrl}/completions: no answer within 0.15 s: give a longer \`timeoutMs\` if the server is slow rather than stuck`,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    // A retry would double the wait for a server that is stuck.
    expect(server.requests).toHaveLength(1);
  });

  it("does not retry a 400 and gives the server's message", async () => {
    const server = await serve((_req, _n, res) => {
      res
        .writeHead(400, { "content-type": "application/json" })
        .end(JSON.stringify({ object: "error", message: "The model `nope` does not exist.", code: 404 }));
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "nope", retryDelayMs: 1 });
    const error = await failure(backend.generate("p"));
    expect(error.code).toBe("BACKEND");
    expect(error.message).toBe(
      `${server.baseUrl}/completions: HTTP 400 Bad Request: The model \`nope\` does not exist.`,
    );
    expect(server.requests).toHaveLength(1);
  });

  it("reports a response without choices", async () => {
    const server = await serve((_req, _n, res) => {
      res.writeHead(200).end(JSON.stringify({ choices: [] }));
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m" });
    const error = await failure(backend.generate("p"));
    expect(error.message).toBe(
      `${server.baseUrl}/completions: the response has no choices[0].text: {"choices":[]}`,
    );
  });

  it("retries a refused connection and then says so", async () => {
    // A port that was just free: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const backend = new OpenAIBackend({
      baseUrl: `http://127.0.0.1:${port}/v1`,
      model: "m",
      retries: 1,
      retryDelayMs: 1,
    });
    const error = await failure(backend.generate("p"));
    expect(error.message).toBe(
      `http://127.0.0.1:${port}/v1/completions: cannot reach the server: ECONNREFUSED (2 attempts)`,
    );
  });

  it("never has more requests in flight than the concurrency limit", async () => {
    const server = await serve(async (req, _n, res) => {
      await new Promise((r) => setTimeout(r, 20));
      sendCompletion(res, req.prompt.toUpperCase(), 1);
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", concurrency: 3 });
    const prompts = Array.from({ length: 20 }, (_, i) => `p${i}`);
    const outs = await Promise.all(prompts.map((p) => backend.generate(p)));
    expect(outs.map((o) => o.text)).toEqual(prompts.map((p) => p.toUpperCase()));
    expect(server.maxInFlight()).toBe(3);
  });

  it("stops at once when the caller aborts", async () => {
    const server = await serve(() => {});
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m" });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await failure(backend.generate("p", { signal: controller.signal }));
    expect(error.code).toBe("ABORTED");
    expect(server.requests).toHaveLength(1);
  });

  it("keeps the requests in flight within a llama-server's context, which its slots share", async () => {
    // llama-server's GET /props (server-context.cpp get_res_props): a slot's context, here 100 tokens.
    let inFlight = 0;
    const most: Record<string, number> = {};
    const server = await startServer(async (req, body, res) => {
      if (req.url === "/props")
        return void res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            default_generation_settings: { n_ctx: 100 },
            eos_token: "</s>",
            total_slots: 4,
          }),
        );
      const { prompt } = JSON.parse(body) as { prompt: number[] };
      const kind = prompt.length > 30 ? "long" : "short";
      inFlight++;
      most[kind] = Math.max(most[kind] ?? 0, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      sendCompletion(res, " ok</s> more", 2);
    });
    close = server.close;
    const tokenizer = { ...WORDS, encode: (text: string) => [1, ...text.split(" ").map(() => 5)] };
    const backend = await OpenAIBackend.connect({
      baseUrl: server.baseUrl,
      model: "m",
      tokenizer,
      promptIds: true,
    });
    expect(backend.contextSize).toBe(100);
    // 40 + 16 tokens: one at a time; 10 + 16: three fit in 100.
    const long = Array.from({ length: 6 }, () =>
      backend.generate(Array(39).fill("w").join(" "), { maxNewTokens: 16 }),
    );
    await Promise.all(long);
    const short = Array.from({ length: 8 }, () =>
      backend.generate(Array(9).fill("w").join(" "), { maxNewTokens: 16 }),
    );
    const outs = await Promise.all(short);
    expect(most).toEqual({ long: 1, short: 3 });
    // The end text the server said is the backend's (evaluate cuts predictions there).
    expect(outs[0]?.text).toBe(" ok</s> more");
    expect(backend.endText).toBe("</s>");
  });

  it("waits by default as long as the README says: 60 s plus 0.25 s per token asked for", () => {
    expect(defaultTimeoutMs(256)).toBe(124_000);
    expect(defaultTimeoutMs(0)).toBe(60_000);
  });

  it("refuses bad options", () => {
    expect(() => new OpenAIBackend({ baseUrl: "localhost:8000", model: "m" })).toThrow(/must be http/);
    expect(() => new OpenAIBackend({ baseUrl: "not a url", model: "m" })).toThrow(/is not a URL/);
    expect(() => new OpenAIBackend({ baseUrl: "http://x/v1", model: "m", concurrency: 0 })).toThrow(
      "concurrency must be an integer >= 1, got 0",
    );
  });
});
