import type { DatasetRecord } from "../datasets/record.js";
import { inputError, throwIfAborted } from "../errors.js";
import { loadTokenizer } from "../tokenizers/load.js";
import type { ProgressSink } from "../util/progress.js";
import {
  buildExample,
  DEFAULT_RULE,
  endTokenId,
  makeBatch,
  type SequenceRule,
  type TrainExample,
} from "./examples.js";
import { loadLlamaWeights } from "./llamaWeights.js";
import { readLora } from "./lora.js";
import { TfjsLlama } from "./tfjsLlama.js";

export interface EvaluateLossOptions {
  /** Hugging Face Llama directory. */
  model: string;
  /** PEFT adapter directory; omitted or null: the base model. */
  adapter?: string | null;
  records: DatasetRecord[];
  batchSize?: number;
  rule?: SequenceRule;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface ExampleLoss {
  /** Index of the record in the input. */
  record: number;
  /** The exact token ids scored (BOS + prompt + output + EOS, cut as in training). */
  ids: Int32Array;
  outputStart: number;
  /** Summed cross-entropy (nats) of ids[outputStart..], each predicted from all ids before it. */
  loss: number;
  tokens: number;
}

export interface LossResult {
  /** Mean cross-entropy per output token over all examples (the training objective). */
  loss: number;
  tokens: number;
  examples: ExampleLoss[];
}

/**
 * The training loss of a model (+ adapter) on records, with the same sequences as `trainLora`:
 * for checking an exported adapter in another runtime, the per-example ids and sums are returned.
 * Records without outputs are skipped.
 */
export async function evaluateLoss({
  model,
  adapter = null,
  records,
  batchSize = 8,
  rule = DEFAULT_RULE,
  signal,
  progress,
}: EvaluateLossOptions): Promise<LossResult> {
  const weights = await loadLlamaWeights(model);
  const tokenizer = await loadTokenizer(weights.dir);
  const eosId = endTokenId(weights.config.eosTokenId);
  const examples: { record: number; example: TrainExample }[] = [];
  records.forEach((r, record) => {
    const example = buildExample(r, tokenizer, rule, eosId);
    if (example) examples.push({ record, example });
  });
  if (examples.length === 0) throw inputError(model, "no records with an output to score");
  const lora = adapter === null ? null : await readLora(adapter, weights.config);
  const net = await TfjsLlama.fromWeights(weights);
  const tf = net.tf;
  const binding = lora ? net.bindLora(lora) : null;
  // Similar lengths together: less padding; results go back to record order.
  const order = examples
    .map((_, i) => i)
    .sort((a, b) => {
      const x = examples[a]?.example.ids.length ?? 0;
      const y = examples[b]?.example.ids.length ?? 0;
      return x - y;
    });
  const sums = new Float64Array(examples.length);
  try {
    for (let start = 0; start < order.length; start += batchSize) {
      throwIfAborted(signal);
      const chunk = order.slice(start, start + batchSize);
      const batch = makeBatch(chunk.map((i) => (examples[i] as { example: TrainExample }).example));
      const inputs = net.batchInputs(batch);
      try {
        const perRow = tf.tidy(() => net.outputLoss(inputs, batch, binding).perRow);
        const values = await perRow.data();
        perRow.dispose();
        chunk.forEach((i, row) => {
          sums[i] = values[row] as number;
        });
      } finally {
        tf.dispose([inputs.ids, inputs.cos, inputs.sin, inputs.mask]);
      }
      progress?.({
        phase: "loss",
        done: Math.min(start + batchSize, order.length),
        total: order.length,
        unit: "examples",
      });
    }
  } finally {
    if (binding) tf.dispose(binding.tensors);
    net.dispose();
  }
  let total = 0;
  let tokens = 0;
  const out = examples.map(({ record, example }, i) => {
    const n = example.ids.length - example.outputStart;
    total += sums[i] as number;
    tokens += n;
    return { record, ids: example.ids, outputStart: example.outputStart, loss: sums[i] as number, tokens: n };
  });
  return { loss: total / tokens, tokens, examples: out };
}
