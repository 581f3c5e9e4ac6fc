import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { evaluate } from "../src/eval/evaluate.js";
import { LlamaBackend } from "../src/eval/llamaBackend.js";
import { OpenAIBackend } from "../src/eval/openaiBackend.js";
import { LlamaScorer } from "../src/select/llamaScorer.js";
import { OpenAIScorer } from "../src/select/openaiScorer.js";
import type { ScoreExample } from "../src/select/scorer.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { REPO, TINY_MODEL } from "./helpers/shared.js";

/** The scorer's sequences: these tests build their examples by hand. */
const SEQUENCES = { tokenizer: {} as Tokenizer, eosId: 2, contextSize: 128 };

type Route = (body: Record<string, unknown>, res: ServerResponse) => Promise<void> | void;

/** An HTTP server on 127.0.0.1 with JSON POST routes, recording every request body by path. */
async function serve(routes: Record<string, Route>) {
  const seen: { path: string; body: Record<string, unknown> }[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    const route = req.method === "POST" ? routes[req.url ?? ""] : undefined;
    if (!route) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ detail: "Not Found" }));
      return;
    }
    const body = JSON.parse(text) as Record<string, unknown>;
    seen.push({ path: req.url ?? "", body });
    await route(body, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
}

/**
 * llama-server's /v1/completions as the llama.cpp release node-llama-cpp 3.21.1 ships writes it:
 * `echo` is refused with "Only no echo is supported" (tools/server/server-common.cpp,
 * oaicompat_completion_params_parse); `prompt` may be a string or token ids (server-common.cpp
 * tokenize_mixed); `lora: [{id, scale}]` picks the adapters of this request, unlisted ones at scale
 * 0 (server-schema.cpp, field "lora"; parse_lora_request); the text starts with the space the
 * token carries, and usage.completion_tokens counts the end token.
 */
function llamaServerStandIn(adapters: string[]): Route {
  return (body, res) => {
    if (body.echo === true)
      return json(res, 400, {
        error: { code: 400, message: "Only no echo is supported", type: "invalid_request_error" },
      });
    if (typeof body.prompt !== "string" && !Array.isArray(body.prompt))
      return json(res, 400, { error: { code: 400, message: '"prompt" must be a string or an array' } });
    const lora = (body.lora as { id: number; scale: number }[] | undefined) ?? [];
    const on = lora.filter((l) => l.scale !== 0).map((l) => adapters[l.id] ?? `bad id ${l.id}`);
    json(res, 200, {
      choices: [{ index: 0, text: ` ${on.length === 0 ? "base" : on.join("+")}`, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
  };
}

describe("llama-server: choosing the adapter, token-id prompts, the prompt cache, predictions", () => {
  let server: Awaited<ReturnType<typeof serve>>;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    tokenizer = await loadTokenizer(TINY_MODEL);
    server = await serve({ "/v1/completions": llamaServerStandIn(["task092", "task155"]) });
  });
  afterAll(() => server?.close());

  it("sends lora per request, token ids with BOS, extra fields; cache_prompt false without lora", async () => {
    const backend = new OpenAIBackend({
      baseUrl: server.baseUrl,
      model: "tiny",
      lora: [{ id: 1, scale: 1 }],
      promptTokenizer: tokenizer,
      extraBody: { top_k: 1 },
    });
    const out = await backend.generate("Is 7 prime? Output:", { maxNewTokens: 4 });
    expect(out.text).toBe(" task155");
    const sent = server.seen.at(-1)?.body;
    expect(sent?.lora).toEqual([{ id: 1, scale: 1 }]);
    expect(sent?.prompt).toEqual(tokenizer.encode("Is 7 prime? Output:", { bos: true }));
    expect(sent?.top_k).toBe(1);
    expect(sent).not.toHaveProperty("cache_prompt");
    expect(backend.tokenizer).toBe(tokenizer);

    const plain = new OpenAIBackend({ baseUrl: server.baseUrl, model: "tiny" });
    expect((await plain.generate("p")).text).toBe(" base");
    expect(server.seen.at(-1)?.body).toMatchObject({ prompt: "p", cache_prompt: false });
  });

  it("writes predictions without the server's leading space (one rule for every backend)", async () => {
    const backend = new OpenAIBackend({
      baseUrl: server.baseUrl,
      model: "tiny",
      lora: [{ id: 0, scale: 1 }],
    });
    const result = await evaluate({
      backend,
      dataset: [{ id: "r1", input: "q", output: ["task092"] }],
      maxNewTokens: 4,
      truncate: "none",
    });
    expect(result.records[0]?.prediction).toBe("task092");
    expect(result.metrics.exactMatch.mean).toBe(1);
  });

  it("cannot score candidates: says so in one line", async () => {
    const scorer = new OpenAIScorer({ baseUrl: server.baseUrl, model: "tiny", retries: 0 }, SEQUENCES);
    const error = await scorer
      .losses(null, [{ ids: Int32Array.from([1, 5, 6]), outputStart: 2 }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoramixError);
    expect((error as Error).message).toMatch(
      /cannot return prompt log-probabilities .*Only no echo is supported.*score with llama.cpp/,
    );
    expect((error as Error).message).not.toContain("\n");
  });
});

/**
 * vLLM's OpenAI server, the parts candidate scoring uses: `POST /v1/load_lora_adapter` and
 * `/v1/unload_lora_adapter` with {lora_name, lora_path} (vllm/entrypoints/openai/api_server.py,
 * enabled by VLLM_ALLOW_RUNTIME_LORA_UPDATING; LoadLoRAAdapterRequest in protocol.py), a LoRA
 * selected by `model`, and `echo` with `max_tokens: 0` + `logprobs` answered with the prompt's own
 * `token_logprobs`, None for the first token (serving_completion.py,
 * request_output_to_completion_response). The log-probabilities come from llama.cpp on the tiny model.
 */
function vllmStandIn(llama: LlamaBackend) {
  const loras = new Map<string, string>();
  return {
    loras,
    routes: {
      "/v1/load_lora_adapter": (body: Record<string, unknown>, res: ServerResponse) => {
        loras.set(body.lora_name as string, body.lora_path as string);
        res.writeHead(200).end(`Success: LoRA adapter '${body.lora_name}' added successfully.`);
      },
      "/v1/unload_lora_adapter": (body: Record<string, unknown>, res: ServerResponse) => {
        loras.delete(body.lora_name as string);
        res.writeHead(200).end(`Success: LoRA adapter '${body.lora_name}' removed successfully.`);
      },
      "/v1/completions": async (body: Record<string, unknown>, res: ServerResponse) => {
        const model = body.model as string;
        const path = loras.get(model);
        if (model !== "tiny" && path === undefined)
          return json(res, 404, {
            object: "error",
            message: `The model \`${model}\` does not exist.`,
            code: 404,
          });
        if (!(body.echo === true && body.max_tokens === 0 && typeof body.logprobs === "number"))
          return json(res, 400, { object: "error", message: "stand-in: only echo scoring", code: 400 });
        const ids = body.prompt as number[];
        const context = path === undefined ? await llama.baseContext() : await llama.withAdapter(path);
        const lps = await context.tokenLogProbs(ids, 1);
        json(res, 200, {
          choices: [
            { index: 0, text: "", logprobs: { token_logprobs: [null, ...lps] }, finish_reason: "length" },
          ],
          usage: { prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length },
        });
      },
    },
  };
}

describe("vLLM: candidates scored on the server", () => {
  let llama: LlamaBackend;
  let server: Awaited<ReturnType<typeof serve>>;
  let stand: ReturnType<typeof vllmStandIn>;
  let examples: ScoreExample[];
  beforeAll(async () => {
    llama = await LlamaBackend.load({ model: TINY_MODEL, contextSize: 128, kvCache: "f32" });
    stand = vllmStandIn(llama);
    server = await serve(stand.routes);
    const tok = llama.tokenizer;
    examples = ["Is 7 prime? Answer: Yes", "Count: 3 apples. Answer: 3"].map((text) => {
      const [prompt, answer] = text.split("Answer:") as [string, string];
      const p = tok.encode(`${prompt}Answer:`, { bos: true });
      return { ids: Int32Array.from([...p, ...tok.encode(answer), 2]), outputStart: p.length };
    });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await llama?.dispose();
  });

  it("gives the losses llama.cpp gives, loads each adapter under its own name and unloads it", async () => {
    const scorer = new OpenAIScorer({ baseUrl: server.baseUrl, model: "tiny" }, SEQUENCES);
    const local = LlamaScorer.over(llama);
    const adapter = join(REPO, "testbed/adapters/task155_count_nouns_verbs");
    for (const dir of [null, adapter]) {
      const got = await scorer.losses(dir, examples);
      const want = await local.losses(dir, examples);
      for (let i = 0; i < examples.length; i++) expect(got[i]).toBeCloseTo(want[i] as number, 9);
    }
    const loads = server.seen.filter((s) => s.path === "/v1/load_lora_adapter");
    expect(loads).toHaveLength(1);
    expect(loads[0]?.body.lora_path).toBe(adapter);
    expect(String(loads[0]?.body.lora_name)).toMatch(/^loramix-[0-9a-f]{16}$/);
    expect(server.seen.filter((s) => s.path === "/v1/unload_lora_adapter")).toHaveLength(1);
    expect(stand.loras.size).toBe(0);
    const scoring = server.seen.find((s) => s.path === "/v1/completions")?.body;
    expect(scoring).toMatchObject({ echo: true, max_tokens: 0, logprobs: 0, model: "tiny" });
  }, 120_000);

  it("a server that cannot load adapters at run time says how to enable it", async () => {
    const bare = await serve({ "/v1/completions": stand.routes["/v1/completions"] });
    try {
      const scorer = new OpenAIScorer({ baseUrl: bare.baseUrl, model: "tiny", retries: 0 }, SEQUENCES);
      await expect(
        scorer.losses(join(REPO, "testbed/adapters/task155_count_nouns_verbs"), examples),
      ).rejects.toThrow(
        /cannot load adapters at run time \(vLLM: start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True/,
      );
    } finally {
      await bare.close();
    }
  });
});
