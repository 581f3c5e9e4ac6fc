import { porterStem } from "./porter.js";

/**
 * SPEC §6 metrics, as the Super-NaturalInstructions / Tk-Instruct evaluation computes them:
 * Rouge-L from Google's `rouge_score` (use_stemmer=True) and SQuAD-style exact match, each the
 * maximum over a record's references.
 */

/** rouge_score's tokenizer: lowercase, non-[a-z0-9] runs become spaces, Porter-stem tokens longer than 3. */
export function rougeTokens(text: string): string[] {
  const tokens: string[] = [];
  for (const raw of text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .split(" ")) {
    if (raw === "") continue;
    const token = raw.length > 3 ? porterStem(raw) : raw;
    // rouge_score drops tokens that are not [a-z0-9]+ after stemming; only empties can arise here.
    if (token !== "") tokens.push(token);
  }
  return tokens;
}

/** Length of the longest common subsequence, O(|a|·|b|) time and O(|b|) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  const row = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = 0; // row[j-1] of the previous row
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = a[i - 1] === b[j - 1] ? diagonal + 1 : Math.max(above, row[j - 1] as number);
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** Rouge-L of one prediction against one reference; 0 when either has no tokens (as rouge_score). */
export function rougeL(prediction: string, reference: string): RougeScore {
  return rougeLTokens(rougeTokens(prediction), rougeTokens(reference));
}

function rougeLTokens(prediction: string[], reference: string[]): RougeScore {
  if (prediction.length === 0 || reference.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(reference, prediction);
  const precision = lcs / prediction.length;
  const recall = lcs / reference.length;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

/** Rouge-L F-measure against the best-matching reference (0 with no references). */
export function rougeLMax(prediction: string, references: readonly string[]): number {
  const tokens = rougeTokens(prediction);
  let best = 0;
  for (const r of references) best = Math.max(best, rougeLTokens(tokens, rougeTokens(r)).fmeasure);
  return best;
}

/** Python's `string.punctuation`: the ASCII punctuation the SQuAD normaliser removes. */
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
/** Python's `\b(a|an|the)\b` on str: word characters are Unicode letters, digits and "_". */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
/** The characters Python's `str.split()` splits on (JS `\s` lacks \x1c-\x1f and \x85, adds \ufeff). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: \x1c-\x1f are whitespace to Python.
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** SQuAD's normalize_answer: lowercase, drop punctuation, drop articles, collapse whitespace. */
export function normalizeAnswer(text: string): string {
  const words = text.toLowerCase().replace(PUNCTUATION, "").replace(ARTICLES, " ").split(PY_WHITESPACE);
  return words.filter((w) => w !== "").join(" ");
}

/** 1 when the prediction equals some reference after normalisation, else 0. */
export function exactMatch(prediction: string, references: readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return references.some((r) => normalizeAnswer(r) === p) ? 1 : 0;
}

export interface Summary {
  mean: number;
  /** Population standard deviation (ddof 0, numpy's default `np.std`). */
  std: number;
  n: number;
}

/** Mean and population std over records, two-pass in float64; NaN for no values. */
/**
 * Half-width of the normal-approximation 95% interval of a mean from its population summary:
 * 1.96 · s / √n with the sample std s = std·√(n/(n−1)), i.e. 1.96 · std / √(n−1). NaN below 2 values.
 */
export function ci95(s: Summary): number {
  return s.n > 1 ? (1.96 * s.std) / Math.sqrt(s.n - 1) : Number.NaN;
}

export function summarize(values: ArrayLike<number>): Summary {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, n: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i] as number;
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += ((values[i] as number) - mean) ** 2;
  return { mean, std: Math.sqrt(squares / n), n };
}
