/** PEFT LoRA adapter directories: adapter_config.json + adapter_model.safetensors. */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { formatError, inputError } from "../errors.js";
import { writeDirAtomic, writeFileAtomic } from "../util/atomic.js";
import {
  readSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
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

function isEmptyPattern(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === "object" && Object.keys(value).length === 0);
}

export function parseAdapterConfig(file: string, text: string): AdapterConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw formatError(file, `invalid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw formatError(file, "not a JSON object");
  const c = raw as Record<string, unknown>;
  const peftType = c.peft_type ?? "LORA";
  if (peftType !== "LORA") throw formatError(file, `peft_type is ${JSON.stringify(peftType)}; loramix mixes LoRA adapters`);
  if (!Number.isInteger(c.r) || (c.r as number) <= 0) throw formatError(file, `"r" must be a positive integer`);
  if (typeof c.lora_alpha !== "number" || !Number.isFinite(c.lora_alpha)) {
    throw formatError(file, `"lora_alpha" must be a number`);
  }
  const targets = c.target_modules;
  let targetModules: string[];
  if (typeof targets === "string") targetModules = [targets];
  else if (Array.isArray(targets) && targets.every((t) => typeof t === "string")) targetModules = [...targets].sort();
  else throw formatError(file, `"target_modules" must be a string or a list of strings`);
  if (!isEmptyPattern(c.rank_pattern) || !isEmptyPattern(c.alpha_pattern)) {
    throw formatError(file, "rank_pattern/alpha_pattern are set: loramix mixes adapters with one rank and alpha");
  }
  if (c.use_dora === true) throw formatError(file, "DoRA adapters (use_dora) are not supported");
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

/** PEFT names the pair `<module>.lora_A.weight` (older/named adapters: `<module>.lora_A.<name>.weight`). */
const LORA_TENSOR = /^(.*)\.lora_([AB])(?:\.[^.]+)?\.weight$/;

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

  const pairs = new Map<string, { a?: string; b?: string }>();
  const dtypes = new Set<SafetensorsDtype>();
  for (const name of header.tensors.keys()) {
    const m = LORA_TENSOR.exec(name);
    if (!m) continue;
    const [, module, which] = m as unknown as [string, string, "A" | "B"];
    const pair = pairs.get(module) ?? {};
    if (which === "A") pair.a = name;
    else pair.b = name;
    pairs.set(module, pair);
    dtypes.add(header.tensors.get(name)!.dtype);
  }
  if (pairs.size === 0) throw formatError(file, "no lora_A/lora_B tensors");
  const modules: LoraModule[] = [];
  for (const [module, { a, b }] of [...pairs].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
    if (!a || !b) throw formatError(file, `module "${module}" has lora_${a ? "A" : "B"} but no lora_${a ? "B" : "A"}`);
    const sa = header.tensors.get(a)!.shape;
    const sb = header.tensors.get(b)!.shape;
    if (sa.length !== 2 || sb.length !== 2 || sa[0] !== sb[1]) {
      throw formatError(
        file,
        `module "${module}": lora_A ${JSON.stringify(sa)} and lora_B ${JSON.stringify(sb)} are not [r, in] and [out, r]`,
      );
    }
    if (sa[0] !== config.r) {
      throw formatError(file, `module "${module}" has rank ${sa[0]} but adapter_config.json says r = ${config.r}`);
    }
    modules.push({ module, a, b, r: sa[0]!, inFeatures: sa[1]!, outFeatures: sb[0]! });
  }
  if (dtypes.size > 1) throw formatError(file, `LoRA tensors mix dtypes ${[...dtypes].join(", ")}`);
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
  return { dir, file, config, header, modules, layout, dtype: [...dtypes][0]! };
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
  for (const t of b.tensors) if (!namesA.has(t.name)) out.push(`tensor ${t.name} missing in the first adapter`);
  if (out.length > limit) return [...out.slice(0, limit), `... and ${out.length - limit} more differences`];
  return out;
}

/** Writes a PEFT adapter directory atomically (a reader never sees half of it). */
export async function saveAdapter(
  dir: string,
  opts: { config: Record<string, unknown>; tensors: TensorToWrite[]; extraFiles?: Record<string, string> },
): Promise<void> {
  await writeDirAtomic(resolve(dir), async (tmp) => {
    await writeFileAtomic(join(tmp, ADAPTER_CONFIG), `${JSON.stringify(opts.config, null, 2)}\n`);
    await writeSafetensors(join(tmp, ADAPTER_WEIGHTS), opts.tensors, { format: "pt" });
    for (const [name, content] of Object.entries(opts.extraFiles ?? {})) {
      await writeFileAtomic(join(tmp, name), content);
    }
  });
}
