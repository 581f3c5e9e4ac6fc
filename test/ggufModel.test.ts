import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mistralTokenizer from "mistral-tokenizer-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEntry } from "../src/bank/add.js";
import { initBank } from "../src/bank/store.js";
import { hfToGguf } from "../src/convert/hfToGguf.js";
import { loadDataset } from "../src/datasets/load.js";
import { LoramixError } from "../src/errors.js";
import { GgufTokenizer } from "../src/eval/ggufTokenizer.js";
import { LlamaBackend } from "../src/eval/llamaBackend.js";
import { GGML_TYPES, SYNTHETIC_MODEL_KEY } from "../src/formats/gguf.js";
import { readGgufHeader } from "../src/formats/ggufRead.js";
import { generateAdapter } from "../src/generate/generateAdapter.js";
import { scoreExamples } from "../src/select/examples.js";
import { LlamaScorer, sharedPrefix } from "../src/select/llamaScorer.js";
import { synthBank } from "../src/synth/synthBank.js";
import { SYNTH_MODEL_SHAPES, synthModel } from "../src/synth/synthModel.js";
import { MistralTokenizer } from "../src/tokenizers/mistral.js";
import { readSentencePieceModel } from "../src/tokenizers/sentencepieceModel.js";
import { MISTRAL_TOKENIZER_MODEL, REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

/**
 * A GGUF of Mistral's structure at test size (synth-model --shape tiny) with Mistral's real
 * vocabulary: what a GGUF user has, without a tokenizer.json.
 */
let tmp: { dir: string; cleanup: () => Promise<void> };
let gguf: string;
const TASK = join(SNI_DIR, "task1605_ethos_text_classification.json");

beforeAll(async () => {
  tmp = await tempDir("loramix-gguf-model-");
  gguf = join(tmp.dir, "tiny-mistral.gguf");
  await synthModel({ out: gguf, shape: "tiny", vocab: MISTRAL_TOKENIZER_MODEL });
}, 60_000);
afterAll(async () => {
  await tmp?.cleanup();
});

describe("SentencePiece model reader", () => {
  it("reads Mistral's 32000 pieces, in the order mistral-tokenizer-js has them, with scores and types", async () => {
    const pieces = await readSentencePieceModel(MISTRAL_TOKENIZER_MODEL);
    expect(pieces).toHaveLength(32000);
    expect(pieces.slice(0, 4)).toEqual([
      { piece: "<unk>", score: 0, type: 2 },
      { piece: "<s>", score: 0, type: 3 },
      { piece: "</s>", score: 0, type: 3 },
      { piece: "<0x00>", score: 0, type: 6 },
    ]);
    // The package encodes by the same pieces, U+FEFF (a piece of its own, 31759) included.
    expect(pieces.map((p) => p.piece)).toEqual(mistralTokenizer.vocabById);
    expect(pieces[31759]?.piece).toBe("\uFEFF");
  });
});

describe("synth-model", () => {
  it("writes every tensor of the shape in Q4_0 (norms F32), a real vocabulary, and marks the file synthetic", async () => {
    const header = await readGgufHeader(gguf);
    const meta = header.metadata;
    expect(meta[SYNTHETIC_MODEL_KEY]).toEqual({ type: "bool", value: true });
    expect(String(meta["general.name"]?.value)).toMatch(/synthetic.*random weights/);
    const shape = SYNTH_MODEL_SHAPES.tiny;
    // Brute force over the Llama graph: embeddings and output head, then per layer q k v o, the
    // three MLP matrices and two norms; then the final norm.
    const kv = (shape.nHeadKv * shape.nEmbd) / shape.nHead;
    const perLayer =
      2 * shape.nEmbd * shape.nEmbd + 2 * kv * shape.nEmbd + 3 * shape.nFf * shape.nEmbd + 2 * shape.nEmbd;
    const expected = 2 * 32000 * shape.nEmbd + shape.nLayer * perLayer + shape.nEmbd;
    const numel = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
    expect(header.tensors.reduce((s, t) => s + numel(t.dims), 0)).toBe(expected);
    expect(header.tensors).toHaveLength(2 + 9 * shape.nLayer + 1);
    for (const t of header.tensors) {
      const type = t.dims.length === 1 ? "F32" : "Q4_0";
      expect(t.type, t.name).toBe(type);
      const { blockSize, typeSize } = GGML_TYPES[type] as { blockSize: number; typeSize: number };
      expect(t.nbytes, t.name).toBe((numel(t.dims) / blockSize) * typeSize);
    }
    expect(meta["tokenizer.ggml.tokens"]?.value).toHaveLength(32000);
  });
});

describe("a GGUF without a tokenizer.json", () => {
  it("is tokenized by its own vocabulary in llama.cpp, exactly as Mistral's tokenizer does", async () => {
    const backend = await LlamaBackend.load({ model: gguf, contextSize: 256, threads: 1 });
    try {
      expect(backend.tokenizer).toBeInstanceOf(GgufTokenizer);
      expect(backend.tokenizer.vocabSize).toBe(32000);
      expect(backend.tokenizer.bosId).toBe(1);
      expect(backend.tokenizer.eosText).toBe("</s>");
      const mistral = new MistralTokenizer();
      const records = (await loadDataset(TASK)).splits.train.slice(0, 60);
      const texts = [...records.flatMap((r) => [r.input, r.output[0] ?? ""]), "naïve café 東京 🙂\n\n  x"];
      for (const text of texts)
        expect(backend.tokenizer.encode(text, { bos: true })).toEqual(mistral.encode(text, { bos: true }));
    } finally {
      await backend.dispose();
    }
  }, 60_000);

  it("whose vocabulary has no byte pieces is refused with the option to give, never tokenized into a crash", async () => {
    // TinyStories' vocabulary converted to GGUF has no <0xNN> pieces: llama.cpp's tokenizer aborts
    // the process on a character it does not cover.
    const tiny = join(tmp.dir, "tinystories.gguf");
    await hfToGguf({ modelDir: TINY_MODEL, out: tiny });
    await expect(LlamaBackend.load({ model: tiny, threads: 1 })).rejects.toThrow(
      /tinystories\.gguf: its vocabulary has no byte pieces, without which llama\.cpp cannot tokenize every text; give `tokenizer` \(the model's tokenizer\.json\)/,
    );
    // generate falls back to the bank's tokenizer, as a scorer of the bank's own model needs.
    const backend = await LlamaBackend.load({ model: tiny, threads: 1, fallbackTokenizer: TINY_MODEL });
    try {
      expect(backend.tokenizer.encode("naïve 東京 🙂", { bos: true }).length).toBeGreaterThan(1);
    } finally {
      await backend.dispose();
    }
  }, 60_000);

  it("reusing the prompt prefix examples share gives the losses of each example scored alone", async () => {
    const scorer = await LlamaScorer.open({ model: gguf, contextSize: 1024, threads: 1, kvCache: "f32" });
    try {
      const records = (await loadDataset(TASK)).splits.train;
      const examples = scoreExamples(records, scorer, { context: 1024, answerTokens: 16 }, 12);
      // A Super-NI task's definition and examples: most of every prompt.
      expect(sharedPrefix(examples)).toBeGreaterThan(100);
      const together = await scorer.losses(null, examples);
      for (const [i, e] of examples.entries()) {
        const [alone] = await scorer.losses(null, [e]);
        expect(Math.abs((together[i] as number) - (alone as number)), `example ${i}`).toBeLessThan(1e-3);
      }
    } finally {
      await scorer.dispose();
    }
  }, 120_000);

  it("generate scores and mixes with it (no tokenizer given) and says the model is synthetic", async () => {
    const tasks = join(tmp.dir, "tasks");
    mkdirSync(tasks);
    const files = readdirSync(SNI_DIR)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .slice(0, 5);
    for (const f of files) symlinkSync(join(SNI_DIR, f), join(tasks, f));
    const synth = join(tmp.dir, "synth");
    const { entries } = await synthBank({ dir: synth, data: tasks, entries: 5, layout: "tiny-mistral" });
    const bank = await initBank(join(tmp.dir, "bank"), {
      tokenizer: "mistral",
      baseModel: "loramix/tiny-synthetic",
    });
    try {
      for (const e of entries) await addEntry(bank, { id: e.id, data: e.dataPath, adapter: e.adapterDir });
      const out = join(tmp.dir, "generated");
      const result = await generateAdapter(bank, {
        data: TASK,
        model: gguf,
        nearest: 2,
        scoreExamples: 8,
        budget: 20_000,
        context: 512,
        threads: 1,
        out,
      });
      expect(result.selection?.scored.length).toBeGreaterThanOrEqual(2);
      expect(result.notes.join("\n")).toMatch(/is a synthetic model \(loramix synth-model: random weights\)/);
      const record = JSON.parse(readFileSync(join(out, "loramix.json"), "utf8"));
      expect(record.options.selection.schedule.budget).toBe(20_000);
      expect(record.options.selection.tokens).toBeLessThanOrEqual(20_000);
    } finally {
      bank.close();
    }
  }, 180_000);

  it("a GGUF the bank's adapters were not made for is refused before any scoring, naming both", async () => {
    const testbed = join(REPO, "testbed");
    const error = await generateAdapter(testbed, {
      data: TASK,
      model: gguf,
      out: join(tmp.dir, "never"),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoramixError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `${gguf.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: does not fit the bank's adapters \\(the bank's adapters were made for .*tinystories-656k\\): .*q_proj: 128→128, the base model's q_proj is 64→64`,
      ),
    );
    // A base model of the same shapes but another vocabulary is refused by its vocabulary.
    const base = join(tmp.dir, "base-512");
    mkdirSync(base);
    const shape = SYNTH_MODEL_SHAPES.tiny;
    writeFileSync(
      join(base, "config.json"),
      JSON.stringify({
        model_type: "llama",
        architectures: ["LlamaForCausalLM"],
        hidden_size: shape.nEmbd,
        intermediate_size: shape.nFf,
        num_hidden_layers: shape.nLayer,
        num_attention_heads: shape.nHead,
        num_key_value_heads: shape.nHeadKv,
        vocab_size: 32768,
        max_position_embeddings: 1024,
        rms_norm_eps: 1e-5,
      }),
    );
    const bank = await initBank(join(tmp.dir, "bank-v3"), { tokenizer: "mistral", baseModel: base });
    try {
      const synth = join(tmp.dir, "synth");
      const id = readdirSync(join(synth, "adapters"))[0] as string;
      await addEntry(bank, {
        id,
        data: join(tmp.dir, "tasks", `${id}.json`),
        adapter: join(synth, "adapters", id),
      });
      await expect(
        generateAdapter(bank, { data: TASK, model: gguf, out: join(tmp.dir, "never") }),
      ).rejects.toThrow(
        /a vocabulary of 32000 tokens, but the bank's adapters were made for .*base-512, whose vocabulary has 32768/,
      );
    } finally {
      bank.close();
    }
  }, 60_000);
});
