import { existsSync, writeFileSync } from "node:fs";
import { cp } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { OpenAIBackend } from "../src/eval/openaiBackend.js";
import { OpenAIScorer } from "../src/select/openaiScorer.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { runLoramix } from "./helpers/cli.js";
import { type RawHandler, startServer } from "./helpers/httpServer.js";
import { REPO, tempDir } from "./helpers/shared.js";

/**
 * Servers that misbehave (issue 30, cases 1–7), each a small HTTP server on 127.0.0.1 that does
 * one wrong thing; `eval --backend openai` and `generate --score-url` must say what happened in
 * one line, quickly, without following the server where it should not be followed.
 */

const ADAPTER = join(REPO, "testbed/adapters/task195_sentiment140_classification");
/** The scorer's sequences: these tests build their examples by hand. */
const SEQUENCES = { tokenizer: {} as Tokenizer, eosId: 2, contextSize: 128 };

const EXAMPLES = [{ ids: Int32Array.from([1, 5, 6, 7]), outputStart: 2 }];

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.map((close) => close()));
  closers = [];
});

async function serve(handler: RawHandler) {
  const server = await startServer(handler);
  closers.push(server.close);
  return server;
}

let work: string;
let data: string;
/** A copy of the testbed's bank: generate caches distances in the bank it is given. */
let bank: string;
beforeAll(async () => {
  const made = await tempDir("loramix-server-faults-");
  work = made.dir;
  bank = join(work, "testbed");
  await cp(join(REPO, "testbed"), bank, { recursive: true });
  data = join(work, "three.jsonl");
  writeFileSync(
    data,
    ["Is 7 prime?", "Is 8 prime?", "Is 9 prime?"]
      .map((q, i) => JSON.stringify({ input: q, output: i === 0 ? "Yes" : "No" }))
      .join("\n"),
  );
  return made.cleanup;
});

function loramix(args: string[], options: { onSpawn?: (pid: number) => void } = {}) {
  return runLoramix(args, { cwd: work, timeoutMs: 100_000, ...options });
}

function evalArgs(baseUrl: string, ...extra: string[]): string[] {
  return [
    "eval",
    "--backend",
    "openai",
    "--base-url",
    baseUrl,
    "--model-name",
    "m",
    "--truncate",
    "none",
    "--data",
    data,
    "--split",
    "train",
    "--limit",
    "1",
    "--out",
    join(work, `out-${Math.random().toString(36).slice(2)}`),
    ...extra,
  ];
}

/** The promise's rejection, or a failure of the test if it settles otherwise or not within `ms`. */
async function failure(promise: Promise<unknown>, ms = 10_000): Promise<LoramixError> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve(`still running after ${ms} ms`), ms);
  });
  const outcome = await Promise.race([
    promise.then(
      (value) => ({ resolved: value }),
      (error: unknown) => error,
    ),
    deadline,
  ]);
  clearTimeout(timer);
  expect(outcome).toBeInstanceOf(LoramixError);
  return outcome as LoramixError;
}

function completion(res: ServerResponse, text = "Yes"): void {
  res.writeHead(200, { "content-type": "application/json" }).end(
    JSON.stringify({
      choices: [{ index: 0, text, finish_reason: "stop" }],
      usage: { completion_tokens: 1 },
    }),
  );
}

/** vLLM's scoring routes (serving_completion.py echo + logprobs; load/unload_lora_adapter), with `logprob` for every token. */
function vllmScoring(logprob: string, overrides: Record<string, RawHandler> = {}): RawHandler {
  return (req, body, res) => {
    const override = overrides[req.url ?? ""];
    if (override) return override(req, body, res);
    if (req.url === "/v1/load_lora_adapter" || req.url === "/v1/unload_lora_adapter")
      return void res.writeHead(200).end("Success");
    const ids = (JSON.parse(body) as { prompt: number[] }).prompt;
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(
        `{"choices":[{"index":0,"text":"","logprobs":{"token_logprobs":[null${`,${logprob}`.repeat(ids.length - 1)}]}}]}`,
      );
  };
}

/**
 * Answers /v1/completions with up to 200 MB of text in 1 MB pieces, counting what left before the
 * client hung up; other routes (the questions eval asks first) are not found.
 */
function hugeCompletion(sent: { bytes: number }, declare = false): RawHandler {
  const total = 200 * 1024 * 1024;
  const piece = Buffer.alloc(1024 * 1024, "a");
  return (req, _body, res) => {
    if (req.url !== "/v1/completions") return void res.writeHead(404).end();
    res.writeHead(200, {
      "content-type": "application/json",
      ...(declare ? { "content-length": String(total + 60) } : {}),
    });
    res.write('{"choices":[{"index":0,"finish_reason":"stop","text":"');
    const more = () => {
      while (!res.destroyed && sent.bytes < total) {
        sent.bytes += piece.length;
        if (!res.write(piece)) return void res.once("drain", more);
      }
      if (!res.destroyed) res.end('"}]}');
    };
    more();
  };
}

describe("1. a server that never answers", () => {
  it("is given up at the timeout, once (no retries of a hang), with a line while it waits", async () => {
    let requests = 0;
    const server = await serve(() => {
      requests++;
    });
    const warnings: string[] = [];
    const backend = new OpenAIBackend({
      baseUrl: server.baseUrl,
      model: "m",
      timeoutMs: 1200,
      warn: (m) => warnings.push(m),
    });
    const started = performance.now();
    const error = await failure(backend.generate("p", { maxNewTokens: 4 }));
    expect(error.message).toBe(
      `${server.baseUrl}/completions: no answer within 1.2 s: give a longer \`timeoutMs\` if the server is slow rather than stuck`,
    );
    expect(performance.now() - started).toBeLessThan(3000);
    expect(requests).toBe(1);
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toMatch(
      /\/completions: no answer yet after 0\.\d+ s \(loramix gives up at 1\.2 s\)$/,
    );
  });

  it("eval --timeout and generate --score-url --timeout: a line on stderr, then one error line", async () => {
    const server = await serve(() => {});
    const evaluated = await loramix(evalArgs(server.baseUrl, "--timeout", "2"));
    expect(evaluated.code).toBe(1);
    expect(evaluated.stderr).toMatch(/no answer yet after 0\.5 s \(loramix gives up at 2 s\)/);
    // eval first asks the server for its context (/props), which hangs the same way.
    expect(evaluated.stderr.trim().split("\n").at(-1)).toBe(
      `loramix: http://127.0.0.1:${server.port}/props: no answer within 2 s: give a longer --timeout if the server is slow rather than stuck`,
    );
    const generated = await loramix([
      "generate",
      bank,
      "--data",
      data,
      "--score-url",
      server.baseUrl,
      "--score-model",
      "base",
      "--timeout",
      "1",
      "--out",
      join(work, "never"),
    ]);
    expect(generated.code).toBe(1);
    expect(generated.stderr.trim().split("\n").at(-1)).toMatch(
      /no answer within 1 s: give a longer --timeout/,
    );
    expect(existsSync(join(work, "never"))).toBe(false);
  }, 60_000);
});

describe("2. interrupted while the server hangs on unload_lora_adapter", () => {
  it("the unload request carries the abort signal: scoring stops at once", async () => {
    const controller = new AbortController();
    let abortedAt = 0;
    const server = await serve(
      vllmScoring("-1", {
        "/v1/unload_lora_adapter": () => {
          // Never answers; the user presses Ctrl-C.
          abortedAt = performance.now();
          controller.abort();
        },
      }),
    );
    const scorer = new OpenAIScorer({ baseUrl: server.baseUrl, model: "base" }, SEQUENCES);
    const error = await failure(scorer.losses(ADAPTER, EXAMPLES, { signal: controller.signal }));
    expect(error.code).toBe("ABORTED");
    expect(abortedAt).toBeGreaterThan(0);
    expect(performance.now() - abortedAt).toBeLessThan(1000);
  });

  it("Ctrl-C during generate --score-url exits 130 within seconds", async () => {
    let pid = 0;
    let interruptedAt = 0;
    const server = await serve(
      vllmScoring("-1", {
        "/v1/unload_lora_adapter": () => {
          if (interruptedAt > 0) return;
          interruptedAt = performance.now();
          process.kill(pid, "SIGINT");
        },
      }),
    );
    const run = await loramix(
      [
        "generate",
        bank,
        "--data",
        join(REPO, "testbed/sni/task195_sentiment140_classification.json"),
        "--score-url",
        server.baseUrl,
        "--score-model",
        "base",
        "--score-examples",
        "2",
        "--out",
        join(work, "interrupted"),
      ],
      { onSpawn: (p) => (pid = p) },
    );
    expect(interruptedAt).toBeGreaterThan(0);
    expect(run.code).toBe(130);
    expect((performance.now() - interruptedAt) / 1000).toBeLessThan(5);
    expect(existsSync(join(work, "interrupted"))).toBe(false);
  }, 90_000);
});

describe("3. a response far larger than what was asked", () => {
  it("is refused once it passes the cap, and the rest is never read", async () => {
    const sent = { bytes: 0 };
    const server = await serve(hugeCompletion(sent));
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", retries: 0 });
    const error = await failure(backend.generate("p", { maxNewTokens: 256 }));
    expect(error.message).toBe(
      `${server.baseUrl}/completions: the response is larger than 1.25 MiB, the most a reply of 256 tokens can need: the server misbehaves (loramix stopped reading)`,
    );
    // What the sockets' buffers took before loramix hung up, not 200 MB.
    await new Promise((r) => setTimeout(r, 200));
    expect(sent.bytes).toBeLessThan(32 * 1024 * 1024);
  });

  it("is refused unread when its Content-Length says so, and when it answers a scoring request", async () => {
    const declared = { bytes: 0 };
    const server = await serve(hugeCompletion(declared, true));
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", retries: 0 });
    const error = await failure(backend.generate("p", { maxNewTokens: 16 }));
    expect(error.message).toMatch(
      /the response is larger than 1\.02 MiB, the most a reply of 16 tokens can need/,
    );

    const scoring = { bytes: 0 };
    const scorer = await serve(hugeCompletion(scoring));
    const scored = await failure(
      new OpenAIScorer({ baseUrl: scorer.baseUrl, model: "base", retries: 0 }, SEQUENCES).losses(
        null,
        EXAMPLES,
      ),
    );
    expect(scored.message).toMatch(
      /the response is larger than 1\.00 MiB, the most a reply of 4 tokens can need/,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(scoring.bytes).toBeLessThan(32 * 1024 * 1024);
  });

  it("eval --limit 3 ends with one line and writes nothing", async () => {
    const server = await serve(hugeCompletion({ bytes: 0 }));
    const out = join(work, "huge");
    const args = evalArgs(server.baseUrl, "--limit", "3");
    args[args.indexOf("--out") + 1] = out;
    const run = await loramix(args);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split("\n").at(-1)).toMatch(
      /^loramix: http:\/\/127\.0\.0\.1:\d+\/v1\/completions: the response is larger than 1\.25 MiB/,
    );
    expect(run.stderr).not.toContain("internal error");
    expect(existsSync(join(out, "predictions.jsonl"))).toBe(false);
  }, 60_000);
});

describe("4. redirects", () => {
  it.each([307, 308, 301, 302])(
    "HTTP %i is refused with the URL it leads to, and not followed",
    async (status) => {
      let reached = 0;
      const other = await serve((_req, _body, res) => {
        reached++;
        completion(res, "elsewhere");
      });
      const server = await serve((req, _body, res) => {
        res.writeHead(status, { location: `http://127.0.0.1:${other.port}${req.url}` }).end();
      });
      const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m" });
      const error = await failure(backend.generate("p", { maxNewTokens: 4 }));
      expect(error.message).toBe(
        `${server.baseUrl}/completions: HTTP ${status}: the server redirects to http://127.0.0.1:${other.port}/v1/completions; loramix does not follow redirects (they can send the prompts and the key to another server): give that URL as the base URL if it is the server you mean`,
      );
      expect(reached).toBe(0);
    },
  );
});

describe("5. credentials", () => {
  it("a base URL with user:password is refused before any request, without printing the password", async () => {
    let requests = 0;
    const server = await serve((_req, _body, res) => {
      requests++;
      completion(res);
    });
    const url = server.baseUrl.replace("//", "//user:hunter2secret@");
    expect(() => new OpenAIBackend({ baseUrl: url, model: "m" })).toThrow(
      `base URL "http://***@127.0.0.1:${server.port}/v1" carries a user name or password, which loramix does not send (it would end up in messages and logs): give the key with \`apiKey\``,
    );
    const run = await loramix(evalArgs(url));
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("give the key with --api-key-env");
    expect(run.stderr).not.toContain("hunter2secret");
    expect(run.seconds).toBeLessThan(20);
    expect(requests).toBe(0);
  }, 30_000);

  it("a server's message quoting the key is redacted", async () => {
    const key = "sk-verysecret-0123456789";
    const server = await serve((req, _body, res) => {
      res.writeHead(401, { "content-type": "application/json" }).end(
        JSON.stringify({
          error: {
            message: `Incorrect API key provided: ${req.headers.authorization} (key ${key.slice(3)})`,
          },
        }),
      );
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", apiKey: key });
    const error = await failure(backend.generate("p", { maxNewTokens: 4 }));
    expect(error.message).toBe(
      `${server.baseUrl}/completions: HTTP 401 Unauthorized: Incorrect API key provided: Bearer *** (key verysecret-0123456789)`,
    );
    // The key's tail alone is not the key; the whole key and the header never appear.
    expect(error.message).not.toContain(key);
  });
});

describe("6. impossible log-probabilities", () => {
  it.each([
    ["50", "50"],
    ["1e999", "Infinity"],
    ["-1e999", "-Infinity"],
  ])("%s is refused in one line naming the server", async (sent, shown) => {
    const server = await serve(vllmScoring(sent));
    const scorer = new OpenAIScorer({ baseUrl: server.baseUrl, model: "base" }, SEQUENCES);
    const error = await failure(scorer.losses(null, EXAMPLES));
    expect(error.message).toBe(
      `openai:base@${server.baseUrl}: the server returned the log-probability ${shown} for prompt token 2; a log-probability is finite and ≤ 0`,
    );
  });
});

describe("7. a dropped connection, a missing key", () => {
  it("a connection closed in the middle of the body is said as such", async () => {
    const server = await serve((_req, _body, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      res.write('{"choices":[{"text":"par');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const backend = new OpenAIBackend({ baseUrl: server.baseUrl, model: "m", retries: 1, retryDelayMs: 1 });
    const error = await failure(backend.generate("p", { maxNewTokens: 4 }));
    expect(error.message).toMatch(
      new RegExp(
        `^${server.baseUrl}/completions: the server closed the connection in the middle of its response \\(after 24 bytes; .+\\) \\(2 attempts\\)$`,
      ),
    );
  });

  it("--api-key-env naming a variable that is not set is an error, before any request", async () => {
    let requests = 0;
    const server = await serve((_req, _body, res) => {
      requests++;
      completion(res);
    });
    const run = await loramix(evalArgs(server.baseUrl, "--api-key-env", "LORAMIX_TEST_NO_SUCH_KEY"));
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe(
      "loramix: --api-key-env LORAMIX_TEST_NO_SUCH_KEY: the environment variable LORAMIX_TEST_NO_SUCH_KEY is not set",
    );
    expect(requests).toBe(0);
  }, 30_000);
});
