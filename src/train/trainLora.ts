import { resolve } from "node:path";
import type { DatasetRecord } from "../datasets/record.js";
import { inputError, throwIfAborted, usageError } from "../errors.js";
import { TRAIN_RECORD } from "../formats/fileNames.js";
import { saveAdapter } from "../formats/peft.js";
import { loadTokenizer } from "../tokenizers/load.js";
import { checkOutDir } from "../util/atomic.js";
import { seededRandom } from "../util/prng.js";
import type { ProgressSink } from "../util/progress.js";
import { yieldToEventLoop } from "../util/yield.js";
import { AdamW, clipGlobalNorm } from "./adamw.js";
import {
  buildExample,
  checkRuleFits,
  DEFAULT_RULE,
  endTokenId,
  epochBatches,
  makeBatch,
  type SequenceRule,
  type TrainExample,
  truncationRule,
} from "./examples.js";
import { type LlamaWeights, loadLlamaWeights } from "./llamaWeights.js";
import {
  DEFAULT_ALPHA,
  DEFAULT_RANK,
  DEFAULT_TARGETS,
  initLora,
  type LoraWeights,
  loraConfig,
  loraTensors,
} from "./lora.js";
import { TfjsLlama } from "./tfjsLlama.js";

export const TRAIN_DEFAULTS = {
  steps: 200,
  batchSize: 8,
  lr: 2e-3,
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 0,
} as const;

export interface TrainLoraOptions {
  /** Hugging Face Llama directory (config.json, model.safetensors, tokenizer.json). */
  model: string;
  /**
   * base_model_name_or_path in adapter_config.json: where PEFT finds the base (default: the model
   * directory's absolute path; give a hub id when the model came from the hub).
   */
  baseModelName?: string;
  records: DatasetRecord[];
  /** Adapter directory, written atomically at the end. */
  out: string;
  steps?: number;
  batchSize?: number;
  /** Peak learning rate, decayed linearly to 0 over the steps (the Hugging Face Trainer default). */
  lr?: number;
  weightDecay?: number;
  /** Seed of the shared initialisation of A (the testbed's shared seed). */
  seed?: number;
  /** Seed of the example order; defaults to `seed`. */
  shuffleSeed?: number;
  r?: number;
  alpha?: number;
  /** How records become sequences (default DEFAULT_RULE). */
  rule?: SequenceRule;
  maxGradNorm?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface TrainLoraResult {
  out: string;
  steps: number;
  examples: number;
  epochs: number;
  /** Mean output-token loss of the first batch (the base model: B starts at 0). */
  firstLoss: number;
  /** Mean of the last 10 batch losses. */
  finalLoss: number;
  losses: number[];
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

/**
 * Trains a LoRA (rank 8, alpha 16 on q/k/v by default) of a small Llama model on records' outputs:
 * cross-entropy on the output tokens only (TRUNCATION_RULE builds the sequences), AdamW on the A/B
 * factors with global gradient-norm clipping, mini-batches in a seeded order with length bucketing.
 * Writes a PEFT adapter directory (atomically, so an interrupted run leaves nothing) with the
 * training record in `loramix-train.json`.
 */
export async function trainLora({
  model,
  baseModelName,
  records,
  out,
  steps = TRAIN_DEFAULTS.steps,
  batchSize = TRAIN_DEFAULTS.batchSize,
  lr = TRAIN_DEFAULTS.lr,
  weightDecay = TRAIN_DEFAULTS.weightDecay,
  seed = TRAIN_DEFAULTS.seed,
  shuffleSeed = seed,
  r = DEFAULT_RANK,
  alpha = DEFAULT_ALPHA,
  rule = DEFAULT_RULE,
  maxGradNorm = TRAIN_DEFAULTS.maxGradNorm,
  signal,
  progress,
}: TrainLoraOptions): Promise<TrainLoraResult> {
  for (const [name, v] of Object.entries({ steps, batchSize, r, ...rule })) {
    if (!(Number.isInteger(v) && v >= 1)) throw usageError(`${name} must be a positive integer, got ${v}`);
  }
  for (const [name, v] of Object.entries({ lr, alpha, maxGradNorm })) {
    if (!(Number.isFinite(v) && v > 0)) throw usageError(`${name} must be a positive number, got ${v}`);
  }
  if (!(Number.isFinite(weightDecay) && weightDecay >= 0))
    throw usageError(`weight decay must be ≥ 0, got ${weightDecay}`);
  for (const [name, v] of Object.entries({ seed, shuffleSeed })) {
    if (!Number.isSafeInteger(v)) throw usageError(`${name} must be an integer, got ${v}`);
  }
  const started = performance.now();
  await checkOutDir(out, "adapter");
  const weights = await loadLlamaWeights(model);
  const tokenizer = await loadTokenizer(weights.dir);
  checkRuleFits(rule, weights.config.contextLength, weights.dir);
  const eosId = endTokenId(weights.config.eosTokenId);
  const examples: TrainExample[] = [];
  for (const record of records) {
    const e = buildExample(record, tokenizer, rule, eosId);
    if (e) examples.push(e);
  }
  if (examples.length === 0) throw inputError(out, "no training records with an output");

  const lora = initLora(weights.config, { seed, r, alpha, targets: DEFAULT_TARGETS });
  const loop = await trainSteps(weights, lora, examples, {
    steps,
    batchSize,
    lr,
    weightDecay,
    maxGradNorm,
    shuffleSeed,
    signal,
    progress,
  });
  const { losses, tokens, epochs } = loop;

  const seconds = (performance.now() - started) / 1000;
  const result: TrainLoraResult = {
    out: resolve(out),
    steps,
    examples: examples.length,
    epochs,
    firstLoss: losses[0] as number,
    finalLoss: recentMean(losses),
    losses,
    tokens,
    seconds,
    tokensPerSecond: tokens / loop.seconds,
  };
  const sidecar = {
    trainer: "loramix train (tfjs wasm)",
    baseModel: weights.dir,
    initSeed: seed,
    initialisation:
      "A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT kaiming_uniform a=sqrt(5)) from one mulberry32 stream, layer-major, q/k/v order; B = 0",
    shuffleSeed,
    steps,
    batchSize,
    lr,
    lrSchedule: "linear decay to 0",
    weightDecay,
    optimizer: "AdamW (betas 0.9, 0.999, eps 1e-8), global grad-norm clip",
    maxGradNorm,
    loss: "mean cross-entropy over the output tokens (incl. EOS) of each batch; prompt tokens masked",
    truncation: truncationRule(rule),
    // The sidecar's field names predate SequenceRule; the shipped testbed's adapters carry them.
    maxLength: rule.context,
    maxOutputTokens: rule.answerTokens,
    examples: examples.length,
    truncatedPrompts: examples.filter((e) => e.promptDropped > 0).length,
    truncatedOutputs: examples.filter((e) => e.outputDropped > 0).length,
    epochs,
    firstLoss: result.firstLoss,
    finalLoss: result.finalLoss,
    losses,
    tokens,
    seconds,
    tokensPerSecond: result.tokensPerSecond,
  };
  await saveAdapter(out, {
    config: loraConfig(lora, baseModelName ?? resolve(weights.dir)),
    tensors: loraTensors(lora),
    extraFiles: { [TRAIN_RECORD]: `${JSON.stringify(sidecar, null, 2)}\n` },
  });
  return result;
}

export interface TrainStepsOptions {
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  maxGradNorm: number;
  shuffleSeed: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface TrainStepsResult {
  /** Mean output-token loss of each step's batch, before that step's update. */
  losses: number[];
  tokens: number;
  epochs: number;
  seconds: number;
}

/**
 * The training loop of `trainLora` and `finetuneLora`: `steps` AdamW updates of `lora`'s A and B
 * factors (in place) on mini-batches of `examples` in a seeded order, the learning rate decayed
 * linearly to 0, gradients clipped to a global norm.
 */
export async function trainSteps(
  weights: LlamaWeights,
  lora: LoraWeights,
  examples: readonly TrainExample[],
  { steps, batchSize, lr, weightDecay, maxGradNorm, shuffleSeed, signal, progress }: TrainStepsOptions,
): Promise<TrainStepsResult> {
  const params = lora.pairs.flatMap((p) => [p.a, p.b]);
  const optimizer = new AdamW(params, { lr, weightDecay });
  const random = seededRandom(shuffleSeed);
  const net = await TfjsLlama.fromWeights(weights);
  const tf = net.tf;
  const losses: number[] = [];
  let queue: TrainExample[][] = [];
  let epochs = 0;
  let tokens = 0;
  const started = performance.now();
  try {
    for (let step = 0; step < steps; step++) {
      await yieldToEventLoop(signal);
      if (queue.length === 0) {
        queue = epochBatches(examples, batchSize, random);
        epochs++;
      }
      const batch = makeBatch(queue.shift() as TrainExample[]);
      const inputs = net.batchInputs(batch);
      const binding = net.bindLora(lora);
      try {
        const { value, grads } = tf.tidy(() =>
          tf.valueAndGrads(
            (...factors) => net.outputLoss(inputs, batch, { ...binding, tensors: factors }).mean,
          )(binding.tensors),
        );
        const loss = (await value.data())[0] as number;
        const gradData = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
        tf.dispose([value, ...grads]);
        if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at step ${step + 1}`);
        clipGlobalNorm(gradData, maxGradNorm);
        optimizer.step(gradData, (lr * (steps - step)) / steps);
        losses.push(loss);
      } finally {
        tf.dispose([inputs.ids, inputs.cos, inputs.sin, inputs.mask, ...binding.tensors]);
      }
      for (let b = 0; b < batch.rows; b++) tokens += batch.length - (batch.pads[b] as number);
      const seconds = (performance.now() - started) / 1000;
      progress?.({
        phase: "train",
        done: step + 1,
        total: steps,
        unit: "steps",
        detail: `loss ${recentMean(losses).toFixed(3)}, ${Math.round(tokens / seconds)} tokens/s`,
      });
    }
  } finally {
    net.dispose();
  }
  throwIfAborted(signal);
  return { losses, tokens, epochs, seconds: (performance.now() - started) / 1000 };
}

export function recentMean(losses: number[], n = 10): number {
  const tail = losses.slice(-n);
  return tail.reduce((a, b) => a + b, 0) / tail.length;
}
