import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { DatasetRecord } from "../datasets/record.js";
import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { buildExample } from "../train/examples.js";
import type { ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";
import type { Candidate } from "./candidates.js";
import type { CandidateScorer, ScoreExample } from "./scorer.js";

/** Train records scored per candidate by default (chosen on the bank, see testbed/TRAINING.md). */
export const DEFAULT_SCORE_EXAMPLES = 64;

/**
 * The first `count` records with an output, in split order (SPEC §7 candidate loss), built by
 * `loramix train`'s sequence rule (the prompt cut from the left to fit `context − answerTokens`,
 * the first output + EOS): a candidate is judged on what training would have fitted.
 */
export function scoreExamples(
  records: readonly DatasetRecord[],
  tokenizer: Tokenizer,
  {
    count = DEFAULT_SCORE_EXAMPLES,
    context,
    answerTokens,
    eosId,
  }: { count?: number; context: number; answerTokens: number; eosId: number },
): ScoreExample[] {
  if (!(Number.isInteger(count) && count >= 1))
    throw usageError(`score examples must be a positive integer, got ${count}`);
  const out: ScoreExample[] = [];
  for (const record of records) {
    if (out.length === count) break;
    const e = buildExample(record, tokenizer, {
      maxLength: context,
      maxOutputTokens: answerTokens,
      eosId,
    });
    if (e) out.push({ ids: e.ids, outputStart: e.outputStart });
  }
  return out;
}

export interface ScoredCandidate extends Candidate {
  /** Mean over the examples of the mean output cross-entropy (nats/token); NaN when scoring failed. */
  loss: number;
  seconds: number;
  /** Why scoring failed: reported, and the candidate is not chosen. */
  error?: string;
}

export interface Selection {
  scored: ScoredCandidate[];
  /** Index into `scored` of the lowest loss. */
  chosen: number;
  /** The base model's loss on the same examples: what "no adapter" would give. */
  baseLoss: number;
  examples: number;
  seconds: number;
}

export interface SelectOptions {
  scorer: CandidateScorer;
  /** The bank's adapter directories, parallel to every candidate's weights. */
  adapters: readonly string[];
  candidates: readonly Candidate[];
  examples: readonly ScoreExample[];
  signal?: AbortSignal;
  progress?: ProgressSink;
}

function mean(values: Float64Array): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/**
 * Scores every candidate on the same examples and picks the lowest loss. A single adapter is
 * scored from its own directory; a mixture is mixed (linear, SPEC §5) into a scratch directory
 * that is removed once scored, so at most one mixture is on disk at a time.
 */
export async function selectByLoss({
  scorer,
  adapters,
  candidates,
  examples,
  signal,
  progress,
}: SelectOptions): Promise<Selection> {
  if (candidates.length === 0) throw usageError("no candidates to score");
  if (examples.length === 0) throw usageError("no examples to score the candidates on");
  const started = performance.now();
  const scratch = await scratchDir("select");
  try {
    const total = candidates.length + 1;
    const tick = (done: number, detail: string) =>
      progress?.({ phase: "score", done, total, unit: "candidates", detail });
    tick(0, "base model");
    const baseLoss = mean(await scorer.losses(null, examples, { signal }));
    tick(1, "base model");
    const scored: ScoredCandidate[] = [];
    for (const [k, candidate] of candidates.entries()) {
      throwIfAborted(signal);
      const t = performance.now();
      const loss = await scoreOne(
        scorer,
        adapters,
        candidate,
        examples,
        join(scratch, String(k)),
        signal,
      ).then(
        (v) => ({ loss: v }),
        (error: unknown) => {
          if (error instanceof LoramixError && error.code === "ABORTED") throw error;
          return { loss: Number.NaN, error: error instanceof Error ? error.message : String(error) };
        },
      );
      scored.push({ ...candidate, ...loss, seconds: (performance.now() - t) / 1000 });
      tick(k + 2, candidate.label);
    }
    let chosen = -1;
    for (const [k, c] of scored.entries()) {
      if (Number.isFinite(c.loss) && (chosen < 0 || c.loss < (scored[chosen] as ScoredCandidate).loss))
        chosen = k;
    }
    if (chosen < 0) {
      throw new LoramixError(
        "BACKEND",
        `every candidate failed to score; the first: ${scored[0]?.label}: ${scored[0]?.error}`,
      );
    }
    return {
      scored,
      chosen,
      baseLoss,
      examples: examples.length,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await removeScratch(scratch);
  }
}

async function scoreOne(
  scorer: CandidateScorer,
  adapters: readonly string[],
  candidate: Candidate,
  examples: readonly ScoreExample[],
  scratch: string,
  signal: AbortSignal | undefined,
): Promise<number> {
  if (candidate.kind === "single") {
    const j = candidate.weights.indexOf(1);
    const dir = adapters[j];
    if (dir === undefined) throw usageError(`${candidate.label}: no adapter at index ${j}`);
    return mean(await scorer.losses(dir, examples, { signal }));
  }
  await mixAdapters({ adapters: [...adapters], weights: [...candidate.weights], out: scratch, signal });
  try {
    return mean(await scorer.losses(scratch, examples, { signal }));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
