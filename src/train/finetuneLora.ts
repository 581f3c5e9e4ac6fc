import { existsSync } from "node:fs";
import { join } from "node:path";
import type { DatasetRecord } from "../datasets/record.js";
import { inputError, LoramixError, usageError } from "../errors.js";
import { HF_CONFIG } from "../formats/fileNames.js";
import {
  type LlamaConfig,
  type LlamaDims,
  projectionShape,
  readLlamaConfig,
} from "../formats/llamaConfig.js";
import { type Adapter, loadAdapter } from "../formats/peft.js";
import { isFloatDtype, type TensorToWrite } from "../formats/safetensors.js";
import { loadTokenizer } from "../tokenizers/load.js";
import type { ProgressSink } from "../util/progress.js";
import { buildExample, checkRuleFits, endTokenId, type SequenceRule, type TrainExample } from "./examples.js";
import { loadLlamaWeights, projectionModule } from "./llamaWeights.js";
import { type LoraWeights, readLora } from "./lora.js";
import { recentMean, TRAIN_DEFAULTS, trainSteps } from "./trainLora.js";

/**
 * Fine-tuning steps and peak learning rate by default (loramix train's batch size, decay and
 * clipping). Chosen on the testbed's 50 non-held-out tasks, on their valid splits
 * (bench/finetune.mjs, bench/RESULTS.md): from the fitted mix, 100 steps at 4e-3 scored above the
 * tasks' own 200-step adapters, the majority answer and the same steps from the seeded
 * initialisation; 50 steps, or 2e-3, scored below the own adapters; 8e-3 gained nothing more.
 */
export const DEFAULT_FINETUNE_STEPS = 100;
export const DEFAULT_FINETUNE_LR = 4e-3;

/** Refuses a fine-tuning step count that is not a whole number ≥ 0 (0: no fine-tuning). */
export function checkFinetuneSteps(steps: number): void {
  if (!(Number.isInteger(steps) && steps >= 0))
    throw usageError(`finetune must be a whole number of steps ≥ 0, got ${steps}`);
}

/**
 * Parameters the CPU trainer takes at most. tfjs-wasm holds the model in float32 inside a 32-bit
 * WebAssembly heap (4 GiB at most) beside the activations, so a 1 GB model is already near the
 * ceiling; larger models (Mistral-7B) are left to the mix alone.
 */
export const MAX_FINETUNE_PARAMETERS = 250_000_000;

/** Parameters of a Llama model from its sizes (embeddings once when tied). */
export function llamaParameters(dims: LlamaDims & { tieWordEmbeddings: boolean }): number {
  const projections = (["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const)
    .map((p) => projectionShape(dims, p))
    .reduce((s, [o, i]) => s + o * i, 0);
  const embeddings = dims.vocabSize * dims.nEmbd * (dims.tieWordEmbeddings ? 1 : 2);
  return embeddings + dims.nLayer * (projections + 2 * dims.nEmbd) + dims.nEmbd;
}

/**
 * Why `model` cannot be fine-tuned on this machine's CPU trainer, or null when it can: it must be a
 * Hugging Face Llama directory (the trainer reads its safetensors; a GGUF has no such weights)
 * within MAX_FINETUNE_PARAMETERS.
 */
export async function finetuneUnavailable(model: string): Promise<string | null> {
  if (!existsSync(join(model, HF_CONFIG)))
    return `${model}: fine-tuning trains on the CPU from a Hugging Face model directory (config.json + safetensors), which this is not`;
  let config: LlamaConfig;
  try {
    config = await readLlamaConfig(join(model, HF_CONFIG));
  } catch (error) {
    if (!(error instanceof LoramixError)) throw error;
    return `the CPU trainer runs Llama models only: ${error.message}`;
  }
  const n = llamaParameters(config);
  if (n > MAX_FINETUNE_PARAMETERS)
    return `${model}: fine-tuning runs small models only: ${(n / 1e6).toFixed(0)}M parameters is above the CPU trainer's ${MAX_FINETUNE_PARAMETERS / 1e6}M`;
  return null;
}

export interface FinetuneOptions {
  /** Hugging Face Llama directory: the base model. */
  model: string;
  /** The PEFT adapter to start from (a mix); its r, alpha and modules are kept. */
  adapter: string;
  /** Train records; the first steps × batchSize with an output are used. */
  records: readonly DatasetRecord[];
  steps?: number;
  batchSize?: number;
  lr?: number;
  /** The sequence rule of training and scoring (`loramix train`'s). */
  rule: SequenceRule;
  /** Seed of the example order. */
  seed?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface FinetuneResult {
  /** The fine-tuned tensors under the starting adapter's names and dtype, in its order. */
  tensors: TensorToWrite[];
  steps: number;
  batchSize: number;
  lr: number;
  examples: number;
  epochs: number;
  /** Mean output loss of the first batch (the mix as given) and of the last 10. */
  firstLoss: number;
  finalLoss: number;
  seconds: number;
}

/**
 * The records fine-tuning trains on: the first steps × batchSize with an output, in split order,
 * so a streamed dataset need only keep that many (generate) and a control can train on the same.
 */
export function finetuneRecords<R extends DatasetRecord>(
  records: readonly R[],
  steps: number,
  batchSize: number = TRAIN_DEFAULTS.batchSize,
): R[] {
  return records.filter((r) => r.output.length > 0).slice(0, steps * batchSize);
}

/**
 * A few steps of loramix train's loop (AdamW, linear decay, clipped gradients) that start from a
 * mixed adapter instead of the seeded initialisation. A mix carries the answer format and label
 * words of the bank's nearest tasks; the steps fit it to the dataset's own labels and their
 * balance, which no weighting of other tasks' adapters can do.
 */
export async function finetuneLora({
  model,
  adapter,
  records,
  steps = DEFAULT_FINETUNE_STEPS,
  batchSize = TRAIN_DEFAULTS.batchSize,
  lr = DEFAULT_FINETUNE_LR,
  rule,
  seed = TRAIN_DEFAULTS.seed,
  signal,
  progress,
}: FinetuneOptions): Promise<FinetuneResult> {
  for (const [name, v] of Object.entries({ steps, batchSize })) {
    if (!(Number.isInteger(v) && v >= 1))
      throw usageError(`fine-tuning ${name} must be a positive integer, got ${v}`);
  }
  if (!(Number.isFinite(lr) && lr > 0))
    throw usageError(`fine-tuning lr must be a positive number, got ${lr}`);
  const started = performance.now();
  const weights = await loadLlamaWeights(model);
  checkRuleFits(rule, weights.config.contextLength, model);
  const tokenizer = await loadTokenizer(weights.dir);
  const eosId = endTokenId(weights.config.eosTokenId);
  const examples: TrainExample[] = [];
  for (const record of finetuneRecords(records, steps, batchSize)) {
    const e = buildExample(record, tokenizer, rule, eosId);
    if (e) examples.push(e);
  }
  if (examples.length === 0) throw inputError(model, "no train records with an output to fine-tune on");
  const start = await loadAdapter(adapter);
  const lora = await readLora(start, weights.config);
  const loop = await trainSteps(weights, lora, examples, {
    steps,
    batchSize,
    lr,
    weightDecay: TRAIN_DEFAULTS.weightDecay,
    maxGradNorm: TRAIN_DEFAULTS.maxGradNorm,
    shuffleSeed: seed,
    signal,
    progress,
  });
  return {
    tensors: namedLike(start, lora),
    steps,
    batchSize,
    lr,
    examples: examples.length,
    epochs: loop.epochs,
    firstLoss: loop.losses[0] as number,
    finalLoss: recentMean(loop.losses),
    seconds: (performance.now() - started) / 1000,
  };
}

/** `lora`'s factors under `adapter`'s tensor names, dtype and order, so the output keeps its layout. */
function namedLike(adapter: Adapter, lora: LoraWeights): TensorToWrite[] {
  const data = new Map<string, Float32Array>();
  for (const p of lora.pairs) {
    const module = `base_model.model.${projectionModule(p.layer, p.proj)}`;
    const m = adapter.modules.find((x) => x.module === module);
    if (m === undefined) throw usageError(`${adapter.file}: no module ${module} to write back`);
    data.set(m.a, p.a);
    data.set(m.b, p.b);
  }
  // loadAdapter refuses non-float LoRA tensors; the mixers write float32 in that case too.
  const dtype = isFloatDtype(adapter.dtype) ? adapter.dtype : "F32";
  return adapter.layout.tensors.map((t) => {
    const values = data.get(t.name);
    if (values === undefined) throw usageError(`${adapter.file}: tensor ${t.name} was not fine-tuned`);
    return { name: t.name, dtype, shape: t.shape, data: values };
  });
}
