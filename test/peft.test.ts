import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { type Adapter, compareLayouts, loadAdapter, loraScaling, saveAdapter } from "../src/formats/peft.js";
import { SafetensorsReader, type TensorToWrite, writeSafetensors } from "../src/formats/safetensors.js";
import { PEFT_FIXTURES, tempDir } from "./helpers/shared.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("loramix-peft-"));
});
afterAll(() => cleanup());

const SAME_LAYOUT = ["gemma3-270m_ao-wei_adapter", "gemma3-270m_ao-wei_seed123", "gemma3-270m_ao-wei_stage1"];
const OTHER_LAYOUT = "gemma3-270m_0112LY";

/** Tensor names and shapes straight from the file's JSON header, for checking the loader. */
async function rawHeader(adapterDir: string): Promise<Record<string, { dtype: string; shape: number[] }>> {
  const bytes = await readFile(join(adapterDir, "adapter_model.safetensors"));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  delete header.__metadata__;
  return header;
}

async function refusal(promise: Promise<unknown>): Promise<LoramixError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoramixError);
  return error as LoramixError;
}

describe("real PEFT adapters", () => {
  it("loads the three gemma-3-270m adapters with one layout", async () => {
    const adapters = await Promise.all(SAME_LAYOUT.map((name) => loadAdapter(join(PEFT_FIXTURES, name))));
    const [first] = adapters as [Adapter];
    expect(first.config.r).toBe(4);
    expect(first.config.loraAlpha).toBe(16);
    expect(first.config.useRslora).toBe(false);
    expect(first.config.baseModel).toBe("gemma3-270m-it");
    expect(first.layout.targetModules).toEqual(["k_proj", "o_proj", "q_proj", "v_proj"]);
    expect(first.dtype).toBe("F32");
    expect(first.file).toBe(join(PEFT_FIXTURES, SAME_LAYOUT[0]!, "adapter_model.safetensors"));

    const raw = await rawHeader(join(PEFT_FIXTURES, SAME_LAYOUT[0]!));
    const names = Object.keys(raw).sort();
    expect(first.layout.tensors.map((t) => t.name)).toEqual(names);
    expect(first.layout.tensors.map((t) => t.shape)).toEqual(names.map((n) => raw[n]!.shape));
    expect(first.modules.length).toBe(names.length / 2);
    for (const m of first.modules) {
      expect(raw[`${m.module}.lora_A.weight`]!.shape).toEqual([4, m.inFeatures]);
      expect(raw[`${m.module}.lora_B.weight`]!.shape).toEqual([m.outFeatures, 4]);
    }
    const q0 = first.modules.find((m) => m.module === "base_model.model.model.layers.0.self_attn.q_proj")!;
    expect([q0.inFeatures, q0.outFeatures]).toEqual([640, 1024]);
    const o0 = first.modules.find((m) => m.module === "base_model.model.model.layers.0.self_attn.o_proj")!;
    expect([o0.inFeatures, o0.outFeatures]).toEqual([1024, 640]);

    for (const other of adapters.slice(1)) {
      expect(compareLayouts(first.layout, other.layout)).toEqual([]);
      expect(other.layout).toEqual(first.layout);
    }
  });

  it("names the differences of an adapter with another layout", async () => {
    const a = await loadAdapter(join(PEFT_FIXTURES, SAME_LAYOUT[0]!));
    const b = await loadAdapter(join(PEFT_FIXTURES, OTHER_LAYOUT));
    expect(b.layout.targetModules).toEqual(["q_proj", "v_proj"]);
    const onlyInA = a.layout.tensors.map((t) => t.name).filter((n) => !b.header.tensors.has(n));
    expect(onlyInA.length).toBe(72); // k_proj and o_proj, A and B, of 18 layers
    const diffs = compareLayouts(a.layout, b.layout);
    expect(diffs).toEqual([
      "lora_alpha: 16 vs 4",
      "target_modules: [k_proj, o_proj, q_proj, v_proj] vs [q_proj, v_proj]",
      `tensor ${onlyInA[0]} missing in the second adapter`,
      `tensor ${onlyInA[1]} missing in the second adapter`,
      `tensor ${onlyInA[2]} missing in the second adapter`,
      `... and ${2 + onlyInA.length - 5} more differences`,
    ]);
    expect(compareLayouts(b.layout, a.layout, 3)[2]).toBe(
      `tensor ${onlyInA[0]} missing in the first adapter`,
    );
  });

  it("loads a gpt2 adapter (Conv1D modules, fan_in_fan_out)", async () => {
    const gpt2 = await loadAdapter(join(PEFT_FIXTURES, "gpt2_tigrinya"));
    expect(gpt2.config).toMatchObject({
      r: 8,
      loraAlpha: 32,
      targetModules: ["c_attn", "c_proj"],
      baseModel: "gpt2",
    });
    expect(gpt2.modules.length).toBe(36);
    const byName = new Map(gpt2.modules.map((m) => [m.module, m]));
    expect(byName.get("base_model.model.transformer.h.0.attn.c_attn")).toMatchObject({
      inFeatures: 768,
      outFeatures: 2304,
    });
    expect(byName.get("base_model.model.transformer.h.9.mlp.c_proj")).toMatchObject({
      inFeatures: 3072,
      outFeatures: 768,
    });
    expect(loraScaling(gpt2.config)).toBe(4);
    const gemma = await loadAdapter(join(PEFT_FIXTURES, SAME_LAYOUT[0]!));
    expect(compareLayouts(gemma.layout, gpt2.layout, 3)).toEqual([
      "r: 4 vs 8",
      "lora_alpha: 16 vs 32",
      "target_modules: [k_proj, o_proj, q_proj, v_proj] vs [c_attn, c_proj]",
      `... and ${144 + 72} more differences`,
    ]);
  });
});

describe("loraScaling", () => {
  it("is alpha/r, or alpha/sqrt(r) with rsLoRA", () => {
    expect(loraScaling({ r: 16, loraAlpha: 32, useRslora: false })).toBe(2);
    expect(loraScaling({ r: 16, loraAlpha: 32, useRslora: true })).toBe(8);
    expect(loraScaling({ r: 8, loraAlpha: 16, useRslora: true })).toBeCloseTo(16 / Math.sqrt(8), 15);
  });
});

describe("adapter directories built in the test", () => {
  const baseConfig = {
    peft_type: "LORA",
    r: 2,
    lora_alpha: 4,
    target_modules: ["q"],
    base_model_name_or_path: "m",
  };
  let counter = 0;

  /** An adapter dir with the given config and F32 tensors of the given shapes (filled with their index). */
  async function build(config: unknown, shapes: Record<string, number[]>): Promise<string> {
    const d = join(dir, `a${counter++}`);
    await mkdir(d, { recursive: true });
    await writeFile(
      join(d, "adapter_config.json"),
      typeof config === "string" ? config : JSON.stringify(config),
    );
    const tensors: TensorToWrite[] = Object.entries(shapes).map(([name, shape], i) => ({
      name,
      dtype: "F32",
      shape,
      data: new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(i),
    }));
    await writeSafetensors(join(d, "adapter_model.safetensors"), tensors);
    return d;
  }
  const pair = (module: string, r = 2, inF = 3, outF = 5) => ({
    [`${module}.lora_A.weight`]: [r, inF],
    [`${module}.lora_B.weight`]: [outF, r],
  });

  it("accepts the named-adapter tensor variant", async () => {
    const d = await build(baseConfig, {
      "m.q.lora_A.default.weight": [2, 3],
      "m.q.lora_B.default.weight": [5, 2],
    });
    const a = await loadAdapter(d);
    expect(a.modules).toEqual([
      {
        module: "m.q",
        a: "m.q.lora_A.default.weight",
        b: "m.q.lora_B.default.weight",
        r: 2,
        inFeatures: 3,
        outFeatures: 5,
      },
    ]);
  });

  it("refuses bad configs, each with its reason", async () => {
    const cases: [unknown, RegExp][] = [
      ["{oops", /adapter_config\.json: invalid JSON/],
      [[1], /adapter_config\.json: not a JSON object/],
      [{ ...baseConfig, peft_type: "IA3" }, /peft_type is "IA3", not "LORA"/],
      [{ ...baseConfig, peft_type: undefined }, /peft_type is undefined, not "LORA"/],
      [{ ...baseConfig, r: 0 }, /"r" is 0, not a positive integer/],
      [{ ...baseConfig, lora_alpha: "4" }, /"lora_alpha" is "4", not a number/],
      [{ ...baseConfig, use_rslora: "yes" }, /"use_rslora" is "yes", not true or false/],
      [{ ...baseConfig, target_modules: 3 }, /"target_modules" is 3, not a string or a list of strings/],
      [{ ...baseConfig, use_dora: true }, /DoRA/],
      [{ ...baseConfig, rank_pattern: { q: 8 } }, /rank_pattern gives "q" 8 instead of r = 2/],
      [{ ...baseConfig, alpha_pattern: { q: 8 } }, /alpha_pattern gives "q" 8 instead of lora_alpha = 4/],
      [{ ...baseConfig, lora_alpha: 0 }, /"lora_alpha" is 0, not between 0 \(excluded\) and 1000000/],
      [{ ...baseConfig, lora_alpha: -16 }, /"lora_alpha" is -16/],
      [{ ...baseConfig, lora_alpha: 1e308 }, /"lora_alpha" is 1e\+308/],
      [{ ...baseConfig, bias: "lora_only" }, /"bias" is "lora_only": trained biases/],
      [{ ...baseConfig, modules_to_save: ["lm_head"] }, /"modules_to_save" lists \["lm_head"\]/],
      [{ ...baseConfig, layers_to_transform: "0" }, /"layers_to_transform" is "0", not a layer index/],
      [{ ...baseConfig, fan_in_fan_out: "no" }, /"fan_in_fan_out" is "no", not true or false/],
    ];
    for (const [config, message] of cases) {
      const d = await build(config, pair("m.q"));
      const error = await refusal(loadAdapter(d));
      expect(error.code).toBe("FORMAT");
      expect(error.message).toMatch(message);
      expect(error.message.startsWith(join(d, "adapter_config.json"))).toBe(true);
    }
  });

  it("refuses tensors the config contradicts: target_modules and layers_to_transform", async () => {
    const two = { ...pair("m.layers.0.q"), ...pair("m.layers.1.q"), ...pair("m.layers.1.k") };
    const cases: [unknown, string][] = [
      [baseConfig, 'tensors of "m.layers.1.k", which target_modules ["q"] does not name'],
      [
        { ...baseConfig, target_modules: ["q", "k", "v"] },
        'target_modules names ["v"], which have no tensors',
      ],
      [
        { ...baseConfig, target_modules: ".*q" },
        'tensors of "m.layers.1.k", which target_modules ".*q" does not match',
      ],
      [
        { ...baseConfig, target_modules: ["q", "k"], layers_to_transform: [1] },
        'tensors of "m.layers.0.q" (layer 0), outside layers_to_transform [1]',
      ],
    ];
    for (const [config, message] of cases) {
      const d = await build(config, two);
      expect((await refusal(loadAdapter(d))).message).toBe(`${join(d, "adapter_config.json")}: ${message}`);
    }
    // Consistent: accepted, with "all-linear" (PEFT's shorthand) and an integer layers_to_transform.
    await loadAdapter(await build({ ...baseConfig, target_modules: ["k", "q"] }, two));
    await loadAdapter(await build({ ...baseConfig, target_modules: "all-linear" }, two));
    await loadAdapter(
      await build({ ...baseConfig, target_modules: ["q"], layers_to_transform: 1 }, pair("m.layers.1.q")),
    );
  });

  it("accepts rank/alpha patterns that change nothing, and a string target_modules", async () => {
    const config = { ...baseConfig, rank_pattern: { q: 2 }, alpha_pattern: { q: 4 }, target_modules: ".*q" };
    const a = await loadAdapter(await build(config, pair("m.q")));
    expect(a.layout).toEqual({
      r: 2,
      alpha: 4,
      rslora: false,
      targetModules: [".*q"],
      tensors: [
        { name: "m.q.lora_A.weight", shape: [2, 3] },
        { name: "m.q.lora_B.weight", shape: [5, 2] },
      ],
    });
  });

  it("refuses unpaired, mis-shaped, off-rank, duplicated and foreign tensors", async () => {
    const cases: [Record<string, number[]>, string][] = [
      [{ "m.q.lora_A.weight": [2, 3] }, 'module "m.q" has lora_A but no lora_B'],
      [{ ...pair("m.q"), "m.k.lora_B.weight": [5, 2] }, 'module "m.k" has lora_B but no lora_A'],
      [
        { "m.q.lora_A.weight": [2, 3], "m.q.lora_B.weight": [5, 3] },
        "lora_A [2,3] and lora_B [5,3] are not [r, in] and [out, r]",
      ],
      [{ "m.q.lora_A.weight": [2, 3, 1], "m.q.lora_B.weight": [5, 2] }, "are not [r, in] and [out, r]"],
      [pair("m.q", 4), 'module "m.q" has rank 4 but adapter_config.json says r = 2'],
      [{ ...pair("m.q"), "m.q.lora_A.default.weight": [2, 3] }, 'module "m.q" has two lora_A tensors'],
      [
        { ...pair("m.q"), "m.emb.lora_embedding_A": [2, 10] },
        'tensor "m.emb.lora_embedding_A" is not a lora_A/lora_B weight',
      ],
      [{}, "no lora_A/lora_B tensors"],
    ];
    for (const [shapes, message] of cases) {
      const d = await build(baseConfig, shapes);
      const error = await refusal(loadAdapter(d));
      expect(error.message).toContain(message);
      expect(error.message.startsWith(join(d, "adapter_model.safetensors"))).toBe(true);
    }
  });

  it("refuses a pickled adapter_model.bin without opening it", async () => {
    const d = join(dir, "pickled");
    await mkdir(d);
    await writeFile(join(d, "adapter_config.json"), JSON.stringify(baseConfig));
    // A FIFO: opening it for reading would block until a writer comes, so the test would hang if loramix read it.
    execFileSync("mkfifo", [join(d, "adapter_model.bin")]);
    const error = await refusal(loadAdapter(d));
    expect(error.code).toBe("INPUT");
    expect(error.message).toMatch(/adapter_model\.bin: is a Python pickle, which loramix never unpickles/);
    expect(error.message).toContain("safe_serialization=True");
  });

  it("refuses a missing directory, a file, and a directory without adapter files", async () => {
    expect((await refusal(loadAdapter(join(dir, "nope")))).message).toMatch(/no such adapter directory/);
    const file = join(dir, "file.txt");
    await writeFile(file, "x");
    expect((await refusal(loadAdapter(file))).message).toMatch(/is a directory with adapter_config\.json/);
    const empty = join(dir, "empty");
    await mkdir(empty);
    expect((await refusal(loadAdapter(empty))).message).toMatch(/no adapter_model\.safetensors/);
  });
});

describe("saveAdapter", () => {
  it("round-trips a real adapter through saveAdapter and loadAdapter", async () => {
    const src = await loadAdapter(join(PEFT_FIXTURES, OTHER_LAYOUT));
    const tensors: TensorToWrite[] = [];
    {
      await using reader = await SafetensorsReader.open(src.file);
      for (const t of src.layout.tensors) {
        tensors.push({ name: t.name, dtype: "F32", shape: t.shape, data: await reader.readF32(t.name) });
      }
    }
    const out = join(dir, "saved", "copy");
    await saveAdapter(out, { config: src.config.raw, tensors, extraFiles: { "README.md": "# copy\n" } });
    const copy = await loadAdapter(out);
    expect(copy.layout).toEqual(src.layout);
    expect(copy.modules).toEqual(src.modules);
    expect(copy.config.raw).toEqual(src.config.raw);
    expect(copy.header.metadata).toEqual({ format: "pt" });
    expect(await readFile(join(out, "README.md"), "utf8")).toBe("# copy\n");
    await using reader = await SafetensorsReader.open(copy.file);
    for (const t of tensors) expect(await reader.readF32(t.name)).toEqual(t.data);
    // the copy is byte-identical in its tensor data, and nothing temporary is left beside it
    const original = await readFile(src.file);
    const copied = await readFile(copy.file);
    expect(copied.subarray(copy.header.dataOffset).equals(original.subarray(src.header.dataOffset))).toBe(
      true,
    );
    expect(await readdir(join(dir, "saved"))).toEqual(["copy"]);
  });

  it("replaces an existing directory whole, keeps BF16, and refuses configs it could not read back", async () => {
    const out = join(dir, "replace");
    const config = { peft_type: "LORA", r: 1, lora_alpha: 2, target_modules: ["q"] };
    const tensors = (dtype: TensorToWrite["dtype"]): TensorToWrite[] => [
      { name: "m.q.lora_A.weight", dtype, shape: [1, 2], data: Float32Array.from([1.5, -2]) },
      { name: "m.q.lora_B.weight", dtype, shape: [3, 1], data: Float32Array.from([0.5, 0.25, -1]) },
    ];
    await saveAdapter(out, { config, tensors: tensors("F32"), extraFiles: { "old.txt": "old" } });
    await saveAdapter(out, { config, tensors: tensors("BF16") });
    expect(existsSync(join(out, "old.txt"))).toBe(false);
    const a = await loadAdapter(out);
    expect(a.dtype).toBe("BF16");
    expect(a.config.baseModel).toBeNull();
    await using reader = await SafetensorsReader.open(a.file);
    expect(Array.from(await reader.readF32("m.q.lora_B.weight"))).toEqual([0.5, 0.25, -1]);

    const bad = join(dir, "bad");
    const error = await refusal(saveAdapter(bad, { config: { ...config, r: -1 }, tensors: tensors("F32") }));
    expect(error.message).toMatch(/"r" is -1, not a positive integer/);
    await expect(
      saveAdapter(bad, { config, tensors: tensors("F32"), extraFiles: { "../x": "" } }),
    ).rejects.toThrow(/not a plain file name/);
    expect(existsSync(bad)).toBe(false);
  });
});
