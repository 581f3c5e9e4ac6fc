import type { DatasetRecord } from "../datasets/record.js";
import { usageError } from "../errors.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { shuffledIndices } from "../util/prng.js";

/** One training sequence: BOS + prompt + output (+ EOS); the loss covers ids[outputStart..]. */
export interface TrainExample {
  ids: Int32Array;
  outputStart: number;
  /** Prompt tokens cut from the left to fit the context. */
  promptDropped: number;
  /** Output tokens cut from the right (the EOS is then left out too). */
  outputDropped: number;
}

export interface ExampleOptions {
  /** The model's context: the whole sequence must fit (TinyStories-656K: 512). */
  maxLength?: number;
  maxOutputTokens?: number;
  eosId?: number;
}

export const DEFAULT_MAX_LENGTH = 512;
export const DEFAULT_MAX_OUTPUT_TOKENS = 128;

/** The rule `buildExample` applies, in words, for the CLI help and the training sidecar. */
export function truncationRule(
  maxLength = DEFAULT_MAX_LENGTH,
  maxOutputTokens = DEFAULT_MAX_OUTPUT_TOKENS,
): string {
  return (
    `sequence = BOS + prompt + output[0] + EOS; the output keeps at most ${maxOutputTokens} tokens (no EOS when cut), ` +
    `then the prompt loses its earliest tokens (BOS kept) until the sequence fits ${maxLength} tokens, ` +
    "so the instance at the end of a Super-NI prompt and the start of the answer survive"
  );
}

export const TRUNCATION_RULE = truncationRule();

/**
 * Tokenizes a record as the model sees it at inference: the prompt exactly as a backend encodes it
 * (with BOS), then the first reference output encoded on its own, which is the continuation greedy
 * decoding produces after that prompt, then EOS. Too long a sequence is cut by TRUNCATION_RULE.
 * Returns null for a record without outputs.
 */
export function buildExample(
  record: DatasetRecord,
  tokenizer: Tokenizer,
  {
    maxLength = DEFAULT_MAX_LENGTH,
    maxOutputTokens = DEFAULT_MAX_OUTPUT_TOKENS,
    eosId = 2,
  }: ExampleOptions = {},
): TrainExample | null {
  const answer = record.output[0];
  if (answer === undefined) return null;
  const prompt = tokenizer.encode(record.input, { bos: true });
  const bos = tokenizer.bosId !== null && prompt[0] === tokenizer.bosId ? 1 : 0;
  const fullOutput = tokenizer.encode(answer);
  const output = fullOutput.slice(0, maxOutputTokens);
  const outputDropped = fullOutput.length - output.length;
  if (outputDropped === 0) output.push(eosId);
  // At least one prompt token after BOS stays, so the first output token is predicted from the prompt.
  const room = maxLength - output.length - bos;
  if (room < 1) throw usageError(`maxLength ${maxLength} leaves no room for the prompt`);
  const body = prompt.length - bos;
  const promptDropped = Math.max(0, body - room);
  const ids = new Int32Array(bos + body - promptDropped + output.length);
  if (bos) ids[0] = prompt[0] as number;
  ids.set(prompt.slice(bos + promptDropped), bos);
  const outputStart = bos + body - promptDropped;
  ids.set(output, outputStart);
  return { ids, outputStart, promptDropped, outputDropped };
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
