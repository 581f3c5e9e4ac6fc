import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { formatError, inputError, option, throwIfAborted, usageError } from "../errors.js";
import { saveAdapter } from "../formats/peft.js";
import type { TensorToWrite } from "../formats/safetensors.js";
import { SYNTHETIC_MARKER } from "../merge/sources.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { addUniform, streamSeed } from "./random.js";

/** The shape of a bank's adapters: LoRA on q/k/v_proj of every decoder layer. */
export interface SynthLayout {
  baseModel: string;
  layers: number;
  hidden: number;
  /** Output size of k_proj and v_proj (grouped-query attention: kv heads × head size). */
  kvOut: number;
  r: number;
  alpha: number;
}

export const SYNTH_LAYOUTS = {
  /** Lots-of-LoRAs: r=16, alpha=32, 32 layers, hidden 4096, 8 kv heads × 128: 9,437,184 parameters. */
  "mistral-7b": {
    baseModel: "mistralai/Mistral-7B-Instruct-v0.2",
    layers: 32,
    hidden: 4096,
    kvOut: 1024,
    r: 16,
    alpha: 32,
  },
  /** The same adapters for TinyLlama-1.1B's shape (synth-model --shape tinyllama-1b): 22 layers, hidden 2048, 4 kv heads × 64. */
  "tinyllama-1b": {
    baseModel: "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    layers: 22,
    hidden: 2048,
    kvOut: 256,
    r: 16,
    alpha: 32,
  },
  /** The same adapters for synth-model --shape tiny: 2 layers, hidden 64, 2 kv heads × 16. */
  "tiny-mistral": { baseModel: "loramix/tiny-synthetic", layers: 2, hidden: 64, kvOut: 32, r: 4, alpha: 8 },
  /** Same structure, small enough for tests: 2 layers, hidden 64, kv 16, r=4 (2,432 parameters). */
  tiny: { baseModel: "loramix/tiny-synthetic", layers: 2, hidden: 64, kvOut: 16, r: 4, alpha: 8 },
} satisfies Record<string, SynthLayout>;

export type SynthLayoutName = keyof typeof SYNTH_LAYOUTS;

/**
 * Amplitudes of the three components of every parameter, θ = g·global + c·category + t·task,
 * each uniform in [−1, 1) times the tensor's scale. With these values two adapters of one
 * category have cosine (g²+c²)/(g²+c²+t²) ≈ 0.63 and of different categories g²/(…) ≈ 0.26.
 */
const GLOBAL = 0.5;
const CATEGORY = 0.6;
const TASK = 0.6;
/** Typical magnitudes of trained LoRA factors: A near its Kaiming-uniform init, B small. */
const A_SCALE = 0.02;
const B_SCALE = 0.002;

export interface SynthEntry {
  id: string;
  adapterDir: string;
  dataPath: string;
  categories: string[];
}

export interface SynthBankResult {
  entries: SynthEntry[];
  bytes: number;
  seconds: number;
}

interface TensorSpec {
  name: string;
  shape: [number, number];
  scale: number;
}

export function synthTensors(layout: SynthLayout): TensorSpec[] {
  const specs: TensorSpec[] = [];
  for (let layer = 0; layer < layout.layers; layer++) {
    for (const proj of ["q_proj", "k_proj", "v_proj"]) {
      const prefix = `base_model.model.model.layers.${layer}.self_attn.${proj}`;
      const out = proj === "q_proj" ? layout.hidden : layout.kvOut;
      specs.push({ name: `${prefix}.lora_A.weight`, shape: [layout.r, layout.hidden], scale: A_SCALE });
      specs.push({ name: `${prefix}.lora_B.weight`, shape: [out, layout.r], scale: B_SCALE });
    }
  }
  return specs.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/** adapter_config.json as PEFT writes it for a Lots-of-LoRAs adapter. */
export function synthAdapterConfig(layout: SynthLayout): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: layout.baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: layout.alpha,
    lora_dropout: 0.05,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: layout.r,
    rank_pattern: {},
    revision: null,
    target_modules: ["q_proj", "k_proj", "v_proj"],
    task_type: "CAUSAL_LM",
    use_rslora: false,
  };
}

async function readCategories(path: string): Promise<string[]> {
  let json: unknown;
  try {
    // Some Super-NI files were written by Python's json with bare NaN (e.g. "URL": [NaN]).
    json = JSON.parse((await readFile(path, "utf8")).replace(/([[:,]\s*)NaN(?=\s*[,\]}])/g, "$1null"));
  } catch (error) {
    throw formatError(path, `not valid JSON (${(error as Error).message})`, error);
  }
  const categories = (json as { Categories?: unknown }).Categories;
  if (!Array.isArray(categories) || !categories.every((c) => typeof c === "string")) {
    throw formatError(path, `"Categories" is not a list of strings`);
  }
  return [...categories].sort();
}

/**
 * Writes a bank of synthetic, seeded PEFT adapters paired with real Super-NI tasks (the first
 * `entries` task files of `data` by name): DIR/adapters/<task>/ and DIR/SYNTHETIC.md. Each
 * adapter's parameters are a global component, a component shared by the tasks of the same
 * Super-NI categories and a task-specific one, so mixing and leave-one-out have structure to
 * find. Tasks are generated category by category so the shared part is drawn once per category.
 */
export async function synthBank({
  dir,
  data,
  entries,
  layout = "mistral-7b",
  seed = 0,
  signal,
  progress,
}: {
  dir: string;
  data: string;
  entries: number;
  layout?: SynthLayoutName;
  seed?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<SynthBankResult> {
  const started = performance.now();
  const shape = SYNTH_LAYOUTS[layout];
  if (!shape) throw usageError(`unknown layout "${layout}" (use ${Object.keys(SYNTH_LAYOUTS).join(", ")})`);
  if (!Number.isInteger(entries) || entries < 1) {
    const name = option("entries");
    throw usageError(`${name.text} must be a positive integer, got ${entries}`, [name]);
  }
  const dataDir = resolve(data);
  if (!existsSync(dataDir)) throw inputError(dataDir, "task directory not found");
  const files = (await readdir(dataDir)).filter((f) => /^task\d+_.*\.json$/.test(f)).sort();
  if (files.length < entries) {
    throw inputError(dataDir, `${files.length} Super-NI task files, ${entries} entries asked for`);
  }
  const tasks: SynthEntry[] = [];
  for (const file of files.slice(0, entries)) {
    const dataPath = join(dataDir, file);
    const id = basename(file, ".json");
    tasks.push({
      id,
      dataPath,
      adapterDir: join(resolve(dir), "adapters", id),
      categories: await readCategories(dataPath),
    });
  }
  const groupKey = (t: SynthEntry) => t.categories.join("\u0000");
  const order = [...tasks].sort((x, y) =>
    groupKey(x) < groupKey(y) ? -1 : groupKey(x) > groupKey(y) ? 1 : 0,
  );

  const specs = synthTensors(shape);
  const offsets: number[] = [];
  let numel = 0;
  for (const s of specs) {
    offsets.push(numel);
    numel += s.shape[0] * s.shape[1];
  }
  const shared = new Float32Array(numel);
  const values = new Float32Array(numel);
  const config = synthAdapterConfig(shape);
  const marker = `${JSON.stringify({ synthetic: true, generator: "loramix synth-bank", layout, seed, components: { global: GLOBAL, category: CATEGORY, task: TASK } }, null, 2)}\n`;
  let sharedKey: string | undefined;
  let bytes = 0;
  for (const [done, task] of order.entries()) {
    throwIfAborted(signal);
    if (groupKey(task) !== sharedKey) {
      sharedKey = groupKey(task);
      shared.fill(0);
      specs.forEach((spec, i) => {
        const view = shared.subarray(offsets[i], (offsets[i] as number) + spec.shape[0] * spec.shape[1]);
        addUniform(view, streamSeed(seed, "global", spec.name), GLOBAL * spec.scale);
        // A task in several categories takes their mean direction, scaled to the same size.
        const share = CATEGORY / Math.sqrt(Math.max(1, task.categories.length));
        for (const category of task.categories)
          addUniform(view, streamSeed(seed, "category", category, spec.name), share * spec.scale);
      });
    }
    const tensors: TensorToWrite[] = specs.map((spec, i) => {
      const at = offsets[i] as number;
      const size = spec.shape[0] * spec.shape[1];
      const view = values.subarray(at, at + size);
      addUniform(
        view,
        streamSeed(seed, "task", task.id, spec.name),
        TASK * spec.scale,
        shared.subarray(at, at + size),
      );
      return { name: spec.name, dtype: "F32", shape: spec.shape, data: view };
    });
    await saveAdapter(task.adapterDir, { config, tensors, extraFiles: { [SYNTHETIC_MARKER]: marker } });
    bytes += numel * 4;
    const seconds = (performance.now() - started) / 1000;
    progress?.({
      phase: "synth-bank",
      done: done + 1,
      total: order.length,
      unit: "adapters",
      detail: `${(bytes / 1e6 / seconds).toFixed(0)} MB/s`,
    });
  }
  await writeFileAtomic(join(resolve(dir), "SYNTHETIC.md"), synthReadme(layout, seed, tasks.length));
  return { entries: tasks, bytes, seconds: (performance.now() - started) / 1000 };
}

function synthReadme(layout: SynthLayoutName, seed: number, count: number): string {
  return `# Synthetic adapter bank

The ${count} adapters under \`adapters/\` were **generated by \`loramix synth-bank\`**
(layout \`${layout}\`, seed ${seed}); they were never trained and do nothing useful on a model.
They exist to exercise and benchmark loramix at the size of a real bank. Each is paired with the
real Super-NaturalInstructions task of the same name.

Every parameter is θ = ${GLOBAL}·global + ${CATEGORY}·category + ${TASK}·task, each component
seeded uniform noise (A scaled by ${A_SCALE}, B by ${B_SCALE}); tasks that share Super-NI
categories share the category component, so adapters of one category are more similar than
adapters of different categories. Each adapter directory holds \`${SYNTHETIC_MARKER}\`, and
adapters mixed from them are marked \`"synthetic": true\` in their \`loramix.json\`.
`;
}
