import type { DatasetRecord } from "../datasets/record.js";
import { exactMatch, rougeLMax, type Summary, summarize } from "../eval/metrics.js";

export interface MajorityScore {
  /** The most frequent first output of the train split (ties: the earliest in sort order). */
  answer: string;
  /** Its share of the train records. */
  share: number;
  n: number;
  rougeL: Summary;
  exactMatch: Summary;
}

/** The baseline that ignores the input: always answer the train split's most frequent output. */
export function majorityAnswer(train: DatasetRecord[]): { answer: string; share: number } {
  const counts = new Map<string, number>();
  for (const r of train) {
    const first = (r.output[0] ?? "").trim();
    counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  let answer = "";
  let best = 0;
  for (const [out, c] of [...counts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (c > best) {
      answer = out;
      best = c;
    }
  }
  return { answer, share: train.length > 0 ? best / train.length : 0 };
}

export function majorityScore(train: DatasetRecord[], test: DatasetRecord[]): MajorityScore {
  const { answer, share } = majorityAnswer(train);
  return {
    answer,
    share,
    n: test.length,
    rougeL: summarize(test.map((r) => rougeLMax(answer, r.output))),
    exactMatch: summarize(test.map((r) => exactMatch(answer, r.output))),
  };
}
