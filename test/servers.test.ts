import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluate } from "../src/eval/evaluate.js";
import { LlamaBackend } from "../src/eval/llamaBackend.js";
import { OpenAIBackend } from "../src/eval/openaiBackend.js";
import { LlamaScorer } from "../src/select/llamaScorer.js";
import { OpenAIScorer } from "../src/select/openaiScorer.js";
import type { ScoreExample } from "../src/select/scorer.js";
import { fitRecords } from "../src/tokenizers/fitPrompt.js";
import { loadTokenizer } from "../src/tokenizers/load.js";
import type { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { startServer } from "./helpers/httpServer.js";
import { REPO, TINY_MODEL } from "./helpers/shared.js";

/** The scorer's sequences: these tests build their examples by hand. */
const SEQUENCES = { tokenizer: {} as Tokenizer, eosId: 2, contextSize: 128 };

type Route = (body: Record<string, unknown>, res: ServerResponse) => Promise<void> | void;

/** A test server with JSON routes ("/path" for POST, "GET /path"), recording every request body by path. */
async function serve(routes: Record<string, Route>) {
  const seen: { path: string; body: Record<string, unknown> }[] = [];
  const server = await startServer(async (req, text, res) => {
    const route = routes[req.method === "POST" ? (req.url ?? "") : `${req.method} ${req.url}`];
    if (!route) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ detail: "Not Found" }));
      return;
    }
    const body = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
    seen.push({ path: req.url ?? "", body });
    await route(body, res);
  });
  return { ...server, seen };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
}

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
      // The stand-in evaluates each example whole; LlamaScorer reuses the prefix examples share, which
      // splits llama.cpp's batches differently: the same losses to float32 rounding.
      for (let i = 0; i < examples.length; i++) expect(got[i]).toBeCloseTo(want[i] as number, 5);
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

/**
 * vLLM's answers about itself: `GET /v1/models` lists each served model with its max_model_len
 * (ModelCard, vllm/entrypoints/openai/protocol.py) and `POST /tokenize` {model, prompt,
 * add_special_tokens} answers {count, max_model_len, tokens} (serving_tokenization.py), here with
 * the tiny model's tokenizer; completions answer " Yes".
 */
function vllmDescribing(tokenizer: Tokenizer, maxModelLen: number): Record<string, Route> {
  return {
    "GET /v1/models": (_body, res) =>
      json(res, 200, {
        object: "list",
        data: [{ id: "tiny", object: "model", owned_by: "vllm", root: "tiny", max_model_len: maxModelLen }],
      }),
    "/tokenize": (body, res) => {
      const tokens = tokenizer.encode(body.prompt as string, { bos: body.add_special_tokens !== false });
      json(res, 200, { count: tokens.length, max_model_len: maxModelLen, tokens });
    },
    "/v1/completions": (_body, res) =>
      json(res, 200, {
        choices: [{ index: 0, text: " Yes", finish_reason: "stop" }],
        usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      }),
  };
}

describe("vLLM: eval learns the context and the token counts from the server", () => {
  it("fits prompts with the server's /tokenize to its max_model_len, as a local tokenizer would", async () => {
    const tokenizer = await loadTokenizer(TINY_MODEL);
    const server = await serve(vllmDescribing(tokenizer, 96));
    try {
      const backend = await OpenAIBackend.connect({ baseUrl: server.baseUrl, model: "tiny" });
      expect(backend.contextSize).toBe(96);
      expect(backend.tokenizer).toBeUndefined();
      const long = "Once upon a time there was a little dog who liked to run. ".repeat(20);
      const records = [
        { id: "short", input: "Is it sunny? Answer:", output: ["Yes"] },
        { id: "long", input: `${long}Is the dog happy? Answer:`, output: ["Yes"] },
      ];
      const result = await evaluate({ backend, dataset: records, maxNewTokens: 16 });
      expect(result.metrics.truncate).toBe("left");
      expect(result.metrics.promptsCut).toBe(1);
      const sent = server.seen.filter((s) => s.path === "/v1/completions").map((s) => s.body.prompt);
      const local = fitRecords(records, tokenizer, { context: 96, answerTokens: 16 }).records;
      expect(sent.sort()).toEqual(local.map((r) => r.input).sort());
      expect(result.records.map((r) => r.prediction)).toEqual(["Yes", "Yes"]);

      // A given context above the server's is refused; a smaller one is kept.
      await expect(
        OpenAIBackend.connect({ baseUrl: server.baseUrl, model: "tiny", contextSize: 128 }),
      ).rejects.toThrow(
        `openai:tiny@${server.baseUrl}: a context of 128 tokens is more than the server's 96`,
      );
      const smaller = await OpenAIBackend.connect({
        baseUrl: server.baseUrl,
        model: "tiny",
        contextSize: 64,
      });
      expect(smaller.contextSize).toBe(64);
    } finally {
      await server.close();
    }
  });
});
