import type { DatasetRecord } from "../datasets/record.js";
import { option, usageError } from "../errors.js";
import { contextRuleText, fitPrompt, promptBudget } from "../tokenizers/fitPrompt.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { shuffledIndices } from "../util/prng.js";

/** One training sequence: BOS + prompt + output (+ EOS); the loss covers ids[outputStart..]. */
export interface TrainExample {
  ids: Int32Array;
  outputStart: number;
  /** Characters cut from the start of the prompt to fit the context (0: the whole prompt). */
  promptDropped: number;
  /** Output tokens cut from the right (the EOS is then left out too). */
  outputDropped: number;
}

/**
 * How a record becomes a sequence: the one rule of training, fine-tuning and candidate scoring,
 * built once and passed whole (the end token belongs to the model, see `endTokenId`).
 */
export interface SequenceRule {
  /** Tokens per sequence: the whole sequence must fit (TinyStories-656K's context: 512). */
  context: number;
  /** The answer budget: output tokens kept, end token included. */
  answerTokens: number;
}

export const DEFAULT_RULE: SequenceRule = { context: 512, answerTokens: 128 };

/** transformers' LlamaConfig default `eos_token_id`, for a model or tokenizer that names none. */
export const DEFAULT_EOS_ID = 2;

/** The end token appended to every output: the model's own, else Llama's default. */
export function endTokenId(id: number | null | undefined): number {
  return id ?? DEFAULT_EOS_ID;
}

/**
 * Refuses a rule whose sequences reach beyond the positions `model` was trained with, before any
 * work: its losses there mean nothing.
 */
export function checkRuleFits(rule: SequenceRule, modelContext: number, model: string): void {
  if (rule.context > modelContext) {
    const c = option("context");
    throw usageError(
      `${model}: sequences of ${rule.context} tokens (${c.text}) exceed the model's context of ${modelContext}`,
      [c],
    );
  }
}

/** The rule `buildExample` applies, in words, for the CLI help and the training sidecar. */
export function truncationRule({ context, answerTokens }: SequenceRule = DEFAULT_RULE): string {
  return (
    `sequence = BOS + prompt + output[0] + EOS; ${contextRuleText(context, answerTokens)}; ` +
    `the output keeps at most ${answerTokens} tokens, EOS included when it fits (the same rule as eval --truncate left)`
  );
}

export const TRUNCATION_RULE = truncationRule();

/**
 * Tokenizes a record as the model sees it at inference: the prompt fitted by the context rule
 * (src/tokenizers/fitPrompt.ts) and encoded as a backend encodes it (with BOS), then the first
 * reference output encoded on its own, which is the continuation greedy decoding produces after
 * that prompt, then EOS. Returns null for a record without outputs.
 */
export function buildExample(
  record: DatasetRecord,
  tokenizer: Tokenizer,
  { context, answerTokens }: SequenceRule = DEFAULT_RULE,
  eosId: number = DEFAULT_EOS_ID,
): TrainExample | null {
  const answer = record.output[0];
  if (answer === undefined) return null;
  const text = fitPrompt(record.input, tokenizer, promptBudget(context, answerTokens));
  const prompt = tokenizer.encode(text, { bos: true });
  const fullOutput = tokenizer.encode(answer);
  const output = fullOutput.slice(0, answerTokens);
  const outputDropped = fullOutput.length - output.length;
  if (output.length < answerTokens) output.push(eosId);
  const ids = new Int32Array(prompt.length + output.length);
  ids.set(prompt, 0);
  ids.set(output, prompt.length);
  return {
    ids,
    outputStart: prompt.length,
    promptDropped: record.input.length - text.length,
    outputDropped,
  };
}

/**
 * A padded batch, aligned to the RIGHT (left padding): every row ends at column length − 1, so the
 * output tokens of all rows sit in the last columns and the model computes the output head only
 * there. Row i holds its sequence in columns pads[i]..length − 1.
 */
export interface Batch {
  rows: number;
  length: number;
  ids: Int32Array;
  pads: Int32Array;
  /** Loss tokens per row (ids after outputStart). */
  targets: Int32Array;
  /** max(targets): the last layer computes queries at columns length − 1 − maxTargets .. length − 2. */
  maxTargets: number;
}

export function makeBatch(examples: readonly TrainExample[], padId = 0): Batch {
  const rows = examples.length;
  const length = Math.max(...examples.map((e) => e.ids.length));
  const ids = new Int32Array(rows * length).fill(padId);
  const pads = new Int32Array(rows);
  const targets = new Int32Array(rows);
  examples.forEach((e, i) => {
    const pad = length - e.ids.length;
    pads[i] = pad;
    targets[i] = e.ids.length - e.outputStart;
    ids.set(e.ids, i * length + pad);
  });
  return { rows, length, ids, pads, targets, maxTargets: Math.max(...targets) };
}

/**
 * Batches of `size` examples with little padding: a seeded shuffle, then each window of 16 batches is
 * sorted by length and cut into batches, whose order is shuffled again. Every example is used once
 * per epoch.
 */
export function epochBatches(
  examples: readonly TrainExample[],
  size: number,
  random: () => number,
): TrainExample[][] {
  const order = shuffledIndices(examples.length, random);
  const window = size * 16;
  const batches: TrainExample[][] = [];
  for (let start = 0; start < order.length; start += window) {
    const chunk = order
      .slice(start, start + window)
      .map((i) => examples[i] as TrainExample)
      .sort((x, y) => x.ids.length - y.ids.length);
    for (let b = 0; b < chunk.length; b += size) batches.push(chunk.slice(b, b + size));
  }
  return shuffledIndices(batches.length, random).map((i) => batches[i] as TrainExample[]);
}
