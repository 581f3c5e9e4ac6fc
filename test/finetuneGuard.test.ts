import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../src/datasets/load.js";
import type { DatasetRecord } from "../src/datasets/record.js";
import { readLlamaConfig } from "../src/formats/llamaConfig.js";
import { saveAdapter } from "../src/formats/peft.js";
import { writeSafetensors } from "../src/formats/safetensors.js";
import { FinetuneNotRun, mixAndFinetune } from "../src/generate/finetune.js";
import { mixAdapters } from "../src/merge/mixAdapters.js";
import { initLora, loraConfig, loraTensors } from "../src/train/lora.js";
import { seededRandom } from "../src/util/prng.js";
import { REPO, SNI_DIR, TINY_MODEL, tempDir } from "./helpers/shared.js";

const run = promisify(execFile);
const TASK = join(SNI_DIR, "task1605_ethos_text_classification.json");
let tmp: { dir: string; cleanup: () => Promise<void> };
let records: DatasetRecord[];

/** A fresh adapter of `model`'s shape (B = 0: the base model), as a mix to start from. */
async function startAdapter(model: string, dir: string): Promise<string> {
  const lora = initLora(await readLlamaConfig(join(model, "config.json")), { seed: 1 });
  await saveAdapter(dir, { config: loraConfig(lora, model), tensors: loraTensors(lora) });
  return dir;
}

/**
 * SmolLM2-135M's shape (hidden 576, 30 layers, 9 heads, 3 kv heads, FFN 1536) with random weights
 * and TinyStories' 2048-token vocabulary: 107M parameters, under the trainer's parameter line, yet
 * its first training step needs more than tfjs-wasm's 4 GiB heap.
 */
async function writeSmolShaped(dir: string): Promise<void> {
  mkdirSync(dir);
  const c = { hidden: 576, ffn: 1536, layers: 30, heads: 9, kv: 3, vocab: 2048 };
  const kvOut = (c.kv * c.hidden) / c.heads;
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      hidden_size: c.hidden,
      intermediate_size: c.ffn,
      num_hidden_layers: c.layers,
      num_attention_heads: c.heads,
      num_key_value_heads: c.kv,
      vocab_size: c.vocab,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
    }),
  );
  for (const f of ["tokenizer.json", "tokenizer_config.json"])
    copyFileSync(join(TINY_MODEL, f), join(dir, f));
  const random = seededRandom(7);
  const matrix = (name: string, out: number, inF: number) => {
    const data = new Float32Array(out * inF);
    const s = 1 / Math.sqrt(inF);
    for (let i = 0; i < data.length; i++) data[i] = (2 * random() - 1) * s;
    return { name, dtype: "F32" as const, shape: [out, inF], data };
  };
  const ones = (name: string) => ({
    name,
    dtype: "F32" as const,
    shape: [c.hidden],
    data: new Float32Array(c.hidden).fill(1),
  });
  const tensors = [matrix("model.embed_tokens.weight", c.vocab, c.hidden), ones("model.norm.weight")];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    tensors.push(
      matrix(`${p}.self_attn.q_proj.weight`, c.hidden, c.hidden),
      matrix(`${p}.self_attn.k_proj.weight`, kvOut, c.hidden),
      matrix(`${p}.self_attn.v_proj.weight`, kvOut, c.hidden),
      matrix(`${p}.self_attn.o_proj.weight`, c.hidden, c.hidden),
      matrix(`${p}.mlp.gate_proj.weight`, c.ffn, c.hidden),
      matrix(`${p}.mlp.up_proj.weight`, c.ffn, c.hidden),
      matrix(`${p}.mlp.down_proj.weight`, c.hidden, c.ffn),
      ones(`${p}.input_layernorm.weight`),
      ones(`${p}.post_attention_layernorm.weight`),
    );
  }
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

beforeAll(async () => {
  tmp = await tempDir("loramix-finetune-guard-");
  records = (await loadDataset(TASK)).splits.train;
}, 60_000);
afterAll(async () => {
  await tmp?.cleanup();
});

describe("the default's fine-tuning runs only where it finishes", () => {
  it("is left out when its measured steps would take longer than allowed, and nothing is written", async () => {
    const start = await startAdapter(TINY_MODEL, join(tmp.dir, "start-tiny"));
    const out = join(tmp.dir, "too-slow");
    const error = await mixAndFinetune((dir) => mixAdapters({ adapters: [start], weights: [1], out: dir }), {
      model: TINY_MODEL,
      records,
      steps: 40,
      rule: { context: 128, answerTokens: 16 },
      out,
      limitSeconds: 1e-6,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FinetuneNotRun);
    expect((error as Error).message).toMatch(
      /^40 training steps would take about \d+ s on this machine \([\d.]+ s per step, measured\), more than the 0 s a default run gives them; give --finetune 40 to train anyway$/,
    );
    expect(existsSync(out)).toBe(false);
    // Asked for (no limit), the same steps run.
    const asked = await mixAndFinetune((dir) => mixAdapters({ adapters: [start], weights: [1], out: dir }), {
      model: TINY_MODEL,
      records,
      steps: 3,
      rule: { context: 128, answerTokens: 16 },
      out,
    });
    expect(asked.finetune.steps).toBe(3);
    expect(existsSync(join(out, "adapter_model.safetensors"))).toBe(true);
  }, 120_000);

  it("a model too large for the trainer's heap: a note for the default, one line from train, no crash", async () => {
    const smol = join(tmp.dir, "smol-shaped");
    await writeSmolShaped(smol);
    const start = await startAdapter(smol, join(tmp.dir, "start-smol"));
    const error = await mixAndFinetune((dir) => mixAdapters({ adapters: [start], weights: [1], out: dir }), {
      model: smol,
      records,
      steps: 4,
      rule: { context: 256, answerTokens: 16 },
      out: join(tmp.dir, "never"),
      limitSeconds: 3600,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FinetuneNotRun);
    expect((error as Error).message).toMatch(/smol-shaped: the CPU trainer ran out of memory .*4 GiB/);
    // `loramix train` on the same model: one line and exit 1, no stack and no stray "Aborted()".
    const bin = join(REPO, "dist/cli/main.js");
    const train = await run(
      process.execPath,
      [
        bin,
        "train",
        "--model",
        smol,
        "--data",
        TASK,
        "--steps",
        "2",
        "--context",
        "256",
        "--out",
        join(tmp.dir, "t"),
      ],
      { encoding: "utf8" },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((train as { code: number }).code).toBe(1);
    const lines = (train as { stderr: string }).stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^loramix: .*smol-shaped: the CPU trainer ran out of memory/);
    expect(lines.filter((l) => /Aborted|RuntimeError|^\s+at /.test(l))).toEqual([]);
  }, 400_000);
});
