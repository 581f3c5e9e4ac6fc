/** PEFT LoRA adapter directories: adapter_config.json + adapter_model.safetensors. */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { formatError, inputError, throwIfAborted } from "../errors.js";
import { writeDirAtomic, writeFileAtomic } from "../util/atomic.js";
import { numel } from "./dtypes.js";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from "./fileNames.js";
import {
  isFloatDtype,
  readSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsHeader,
  SafetensorsReader,
  type TensorInfo,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.js";

const PICKLE_WEIGHTS = "adapter_model.bin";

export interface AdapterConfig {
  raw: Record<string, unknown>;
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  targetModules: string[];
  baseModel: string | null;
  peftType: string;
}

export interface LoraModule {
  /** e.g. base_model.model.model.layers.0.self_attn.q_proj */
  module: string;
  /** Tensor names of lora_A.weight [r, in] and lora_B.weight [out, r]. */
  a: string;
  b: string;
  r: number;
  inFeatures: number;
  outFeatures: number;
}

export interface AdapterLayout {
  r: number;
  alpha: number;
  rslora: boolean;
  targetModules: string[];
  /** Sorted by name. */
  tensors: { name: string; shape: number[] }[];
}

export interface Adapter {
  dir: string;
  file: string;
  config: AdapterConfig;
  header: SafetensorsHeader;
  modules: LoraModule[];
  layout: AdapterLayout;
  dtype: SafetensorsDtype;
}

/** The LoRA scale s in ΔW = s·B·A. */
export function loraScaling(config: { r: number; loraAlpha: number; useRslora: boolean }): number {
  return config.useRslora ? config.loraAlpha / Math.sqrt(config.r) : config.loraAlpha / config.r;
}

/**
 * PEFT's rank_pattern / alpha_pattern give chosen modules their own r or alpha. loramix mixes adapters
 * of one rank and one scale, so a pattern is accepted only when it changes nothing: every value equals
 * r or lora_alpha (and loadAdapter checks every tensor's rank against r).
 */
function checkPatterns(file: string, c: Record<string, unknown>, r: number, alpha: number): void {
  for (const [key, expected, what] of [
    ["rank_pattern", r, "r"],
    ["alpha_pattern", alpha, "lora_alpha"],
  ] as const) {
    const pattern = c[key];
    if (pattern === undefined || pattern === null) continue;
    if (typeof pattern !== "object" || Array.isArray(pattern))
      throw formatError(file, `"${key}" is not an object`);
    for (const [module, value] of Object.entries(pattern)) {
      if (value !== expected) {
        throw formatError(
          file,
          `${key} gives "${module}" ${JSON.stringify(value)} instead of ${what} = ${expected}: loramix mixes adapters with one rank and alpha`,
        );
      }
    }
  }
}

export function parseAdapterConfig(file: string, text: string): AdapterConfig {
  let raw: unknown;
  try {
    // Windows editors save a byte-order mark, which JSON.parse refuses.
    raw = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw formatError(file, `invalid JSON (${(error as Error).message.replace(/\s+/g, " ")})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw formatError(file, "not a JSON object");
  const c = raw as Record<string, unknown>;
  if (c.peft_type !== "LORA") {
    throw formatError(
      file,
      `peft_type is ${JSON.stringify(c.peft_type)}, not "LORA": loramix mixes LoRA adapters`,
    );
  }
  if (!Number.isSafeInteger(c.r) || (c.r as number) <= 0) {
    throw formatError(file, `"r" is ${JSON.stringify(c.r)}, not a positive integer`);
  }
  if (typeof c.lora_alpha !== "number" || !Number.isFinite(c.lora_alpha)) {
    throw formatError(file, `"lora_alpha" is ${JSON.stringify(c.lora_alpha)}, not a number`);
  }
  // 0 makes ΔW = 0; a negative or huge alpha is a typo (and above float32's range it becomes
  // Infinity in a GGUF).
  if (!(c.lora_alpha > 0 && c.lora_alpha <= MAX_ALPHA)) {
    throw formatError(file, `"lora_alpha" is ${c.lora_alpha}, not between 0 (excluded) and ${MAX_ALPHA}`);
  }
  const bias = c.bias ?? "none";
  if (bias !== "none") {
    throw formatError(
      file,
      `"bias" is ${JSON.stringify(bias)}: trained biases are not LoRA pairs, which loramix mixes`,
    );
  }
  if (isNonEmpty(c.modules_to_save)) {
    throw formatError(
      file,
      `"modules_to_save" lists ${JSON.stringify(c.modules_to_save)}: fully trained modules cannot be mixed as LoRA pairs`,
    );
  }
  if (c.use_rslora !== undefined && typeof c.use_rslora !== "boolean") {
    throw formatError(file, `"use_rslora" is ${JSON.stringify(c.use_rslora)}, not true or false`);
  }
  const targets = c.target_modules;
  let targetModules: string[];
  // A string is a regular expression over module names in PEFT; kept whole, it still identifies the layout.
  if (typeof targets === "string") targetModules = [targets];
  else if (Array.isArray(targets) && targets.every((t) => typeof t === "string"))
    targetModules = [...targets].sort();
  else
    throw formatError(
      file,
      `"target_modules" is ${JSON.stringify(targets)}, not a string or a list of strings`,
    );
  if (c.use_dora === true) throw formatError(file, "DoRA adapters (use_dora) are not supported");
  checkPatterns(file, c, c.r as number, c.lora_alpha);
  const layers = c.layers_to_transform;
  if (
    layers != null &&
    !(Number.isSafeInteger(layers) || (Array.isArray(layers) && layers.every((l) => Number.isSafeInteger(l))))
  ) {
    throw formatError(
      file,
      `"layers_to_transform" is ${JSON.stringify(layers)}, not a layer index or a list of them`,
    );
  }
  if (c.fan_in_fan_out !== undefined && typeof c.fan_in_fan_out !== "boolean")
    throw formatError(file, `"fan_in_fan_out" is ${JSON.stringify(c.fan_in_fan_out)}, not true or false`);
  return {
    raw: c,
    r: c.r as number,
    loraAlpha: c.lora_alpha,
    useRslora: c.use_rslora === true,
    targetModules,
    baseModel: typeof c.base_model_name_or_path === "string" ? c.base_model_name_or_path : null,
    peftType: "LORA",
  };
}

/**
 * PEFT's save_pretrained names the pair `<module>.lora_A.weight` / `<module>.lora_B.weight` (it strips
 * the adapter name); a raw state dict of a model with a named adapter has `<module>.lora_A.<name>.weight`.
 */
const LORA_TENSOR = /^(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/;

export async function loadAdapter(dir: string): Promise<Adapter> {
  dir = resolve(dir);
  const info = await stat(dir).catch(() => null);
  if (!info) throw inputError(dir, "no such adapter directory");
  if (!info.isDirectory()) throw inputError(dir, "an adapter is a directory with adapter_config.json");
  const configPath = join(dir, ADAPTER_CONFIG);
  const file = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) {
    if (existsSync(join(dir, PICKLE_WEIGHTS))) {
      throw inputError(
        join(dir, PICKLE_WEIGHTS),
        "is a Python pickle, which loramix never unpickles; convert it to adapter_model.safetensors " +
          "(e.g. PeftModel.from_pretrained(...).save_pretrained(dir, safe_serialization=True))",
      );
    }
    throw inputError(dir, `no ${ADAPTER_WEIGHTS}`);
  }
  if (!existsSync(configPath)) throw inputError(dir, `no ${ADAPTER_CONFIG}`);
  const config = parseAdapterConfig(configPath, await readFile(configPath, "utf8"));
  const header = await readSafetensorsHeader(file);

  const modules = pairModules(file, header, config.r);
  checkModulesAgainstConfig(configPath, config, modules);
  const dtypes = new Set(modules.flatMap((m) => [m.a, m.b]).map((name) => header.tensors.get(name)!.dtype));
  if (dtypes.size > 1) throw formatError(file, `LoRA tensors mix dtypes ${[...dtypes].join(", ")}`);
  const dtype = [...dtypes][0]!;
  if (!isFloatDtype(dtype)) throw formatError(file, `LoRA tensors are ${dtype}, not a float type`);
  const layout: AdapterLayout = {
    r: config.r,
    alpha: config.loraAlpha,
    rslora: config.useRslora,
    targetModules: config.targetModules,
    tensors: modules
      .flatMap((m) => [m.a, m.b])
      .sort()
      .map((name) => ({ name, shape: header.tensors.get(name)!.shape })),
  };
  return { dir, file, config, header, modules, layout, dtype };
}

/** Above float32's range a GGUF stores Infinity; no real adapter comes near. */
const MAX_ALPHA = 1e6;

/** A config value that says something: not null, not [] and not {}. */
export function isNonEmpty(v: unknown): boolean {
  return (
    v != null && (Array.isArray(v) ? v.length > 0 : typeof v === "object" ? Object.keys(v).length > 0 : true)
  );
}

const LAYER_INDEX = /\.(?:layers|h|blocks)\.(\d+)\./;

/**
 * The tensors must be the ones the config describes: every module among target_modules (a list
 * names the last part of a module, a string is PEFT's full-match regular expression), every target
 * with a tensor, and every layer among layers_to_transform. A contradiction means the config was
 * edited or belongs to another adapter, and its r/alpha cannot be trusted for these tensors.
 */
function checkModulesAgainstConfig(file: string, config: AdapterConfig, modules: LoraModule[]): void {
  const targets = config.raw.target_modules;
  if (Array.isArray(targets)) {
    const names = new Set(targets as string[]);
    const stray = modules.find((m) => !names.has(m.module.slice(m.module.lastIndexOf(".") + 1)));
    if (stray)
      throw formatError(
        file,
        `tensors of "${stray.module}", which target_modules ${JSON.stringify(targets)} does not name`,
      );
    const seen = new Set(modules.map((m) => m.module.slice(m.module.lastIndexOf(".") + 1)));
    const missing = [...names].filter((t) => !seen.has(t));
    if (missing.length > 0)
      throw formatError(file, `target_modules names ${JSON.stringify(missing)}, which have no tensors`);
  } else if (typeof targets === "string" && targets !== "all-linear") {
    let pattern: RegExp | undefined;
    try {
      pattern = new RegExp(`^(?:${targets})$`);
    } catch {
      pattern = undefined; // Python-only syntax: PEFT checked it when it saved the adapter.
    }
    // PEFT matches the module's name inside the base model, without the base_model.model. prefix.
    const stray = pattern && modules.find((m) => !pattern.test(m.module.replace(/^base_model\.model\./, "")));
    if (stray)
      throw formatError(
        file,
        `tensors of "${stray.module}", which target_modules "${targets}" does not match`,
      );
  }
  const layers = config.raw.layers_to_transform;
  if (layers != null) {
    const allowed = new Set([layers].flat() as number[]);
    for (const m of modules) {
      const layer = LAYER_INDEX.exec(m.module)?.[1];
      if (layer !== undefined && !allowed.has(Number(layer)))
        throw formatError(
          file,
          `tensors of "${m.module}" (layer ${layer}), outside layers_to_transform ${JSON.stringify(layers)}`,
        );
    }
  }
}

/** Every tensor must belong to one lora_A [r, in] / lora_B [out, r] pair of rank r; modules sorted by name. */
function pairModules(file: string, header: SafetensorsHeader, r: number): LoraModule[] {
  const pairs = new Map<string, { a?: TensorInfo; b?: TensorInfo }>();
  for (const info of header.tensors.values()) {
    const m = LORA_TENSOR.exec(info.name);
    // Anything else (lora_embedding_A, lora_magnitude_vector, modules_to_save copies, biases) would be
    // silently dropped by a merge of A/B pairs, so the adapter is refused rather than half mixed.
    if (!m)
      throw formatError(
        file,
        `tensor "${info.name}" is not a lora_A/lora_B weight; loramix mixes A/B pairs only`,
      );
    const module = m[1]!;
    const key = m[2] === "A" ? "a" : "b";
    const pair = pairs.get(module) ?? {};
    const previous = pair[key];
    if (previous) {
      throw formatError(
        file,
        `module "${module}" has two lora_${m[2]} tensors: "${previous.name}" and "${info.name}"`,
      );
    }
    pair[key] = info;
    pairs.set(module, pair);
  }
  if (pairs.size === 0) throw formatError(file, "no lora_A/lora_B tensors");
  const modules: LoraModule[] = [];
  for (const [module, { a, b }] of [...pairs].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
    if (!a || !b)
      throw formatError(file, `module "${module}" has lora_${a ? "A" : "B"} but no lora_${a ? "B" : "A"}`);
    if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[0] !== b.shape[1]) {
      throw formatError(
        file,
        `module "${module}": lora_A ${JSON.stringify(a.shape)} and lora_B ${JSON.stringify(b.shape)} are not [r, in] and [out, r]`,
      );
    }
    if (a.shape[0] !== r) {
      throw formatError(
        file,
        `module "${module}" has rank ${a.shape[0]} but adapter_config.json says r = ${r}: loramix mixes adapters with one rank`,
      );
    }
    modules.push({ module, a: a.name, b: b.name, r, inFeatures: a.shape[1]!, outFeatures: b.shape[0]! });
  }
  return modules;
}

/** Differences between two layouts in words, at most `limit` of them; [] when they are equal. */
export function compareLayouts(a: AdapterLayout, b: AdapterLayout, limit = 5): string[] {
  const out: string[] = [];
  if (a.r !== b.r) out.push(`r: ${a.r} vs ${b.r}`);
  if (a.alpha !== b.alpha) out.push(`lora_alpha: ${a.alpha} vs ${b.alpha}`);
  if (a.rslora !== b.rslora) out.push(`use_rslora: ${a.rslora} vs ${b.rslora}`);
  if (a.targetModules.join(",") !== b.targetModules.join(",")) {
    out.push(`target_modules: [${a.targetModules.join(", ")}] vs [${b.targetModules.join(", ")}]`);
  }
  const shapesB = new Map(b.tensors.map((t) => [t.name, t.shape]));
  const namesA = new Set(a.tensors.map((t) => t.name));
  for (const t of a.tensors) {
    const other = shapesB.get(t.name);
    if (!other) out.push(`tensor ${t.name} missing in the second adapter`);
    else if (other.join(",") !== t.shape.join(",")) {
      out.push(`tensor ${t.name} shape [${t.shape.join(", ")}] vs [${other.join(", ")}]`);
    }
  }
  for (const t of b.tensors)
    if (!namesA.has(t.name)) out.push(`tensor ${t.name} missing in the first adapter`);
  if (out.length > limit) return [...out.slice(0, limit), `... and ${out.length - limit} more differences`];
  return out;
}

/**
 * Writes a PEFT adapter directory atomically (a reader never sees half of it), with loramix's
 * output marker. The config is checked as loadAdapter would check it before any weight is
 * written, so loramix never writes an adapter it would refuse to read. `tensors` are the weights,
 * or a function that streams them into the safetensors file it is given.
 */
export async function saveAdapter(
  dir: string,
  opts: {
    config: Record<string, unknown>;
    tensors: TensorToWrite[] | ((file: string) => Promise<void>);
    extraFiles?: Record<string, string>;
  },
): Promise<void> {
  dir = resolve(dir);
  const configText = `${JSON.stringify(opts.config, null, 2)}\n`;
  parseAdapterConfig(join(dir, ADAPTER_CONFIG), configText);
  const extra = Object.entries(opts.extraFiles ?? {});
  for (const [name] of extra) {
    if (
      name !== basename(name) ||
      name === "." ||
      name === ".." ||
      name === ADAPTER_CONFIG ||
      name === ADAPTER_WEIGHTS
    ) {
      throw new RangeError(
        `extra file name "${name}" is not a plain file name beside the adapter's own files`,
      );
    }
  }
  const { tensors } = opts;
  await writeDirAtomic(
    dir,
    async (tmp) => {
      await writeFileAtomic(join(tmp, ADAPTER_CONFIG), configText);
      const weights = join(tmp, ADAPTER_WEIGHTS);
      if (typeof tensors === "function") await tensors(weights);
      else await writeSafetensors(weights, tensors, { format: "pt" });
      for (const [name, content] of extra) await writeFileAtomic(join(tmp, name), content);
    },
    "adapter",
  );
}

/**
 * The first NaN or ±Infinity among the adapter's LoRA weights, as "tensor T: NaN at element k", or
 * null. Mixing adds every adapter into the result, so one bad value spoils every adapter made
 * from the bank. Streams tensor by tensor through one reused buffer.
 */
export async function firstNonFinite(adapter: Adapter, signal?: AbortSignal): Promise<string | null> {
  await using reader = await SafetensorsReader.open(adapter.file);
  const names = adapter.modules.flatMap((m) => [m.a, m.b]);
  const largest = Math.max(0, ...names.map((n) => numel(reader.info(n).shape)));
  const buffer = new Float32Array(largest);
  for (const name of names) {
    throwIfAborted(signal);
    const values = await reader.readF32(name, buffer.subarray(0, numel(reader.info(name).shape)));
    for (let k = 0; k < values.length; k++) {
      const v = values[k] as number;
      if (!Number.isFinite(v)) return `tensor ${name}: ${v} at element ${k}`;
    }
  }
  return null;
}
