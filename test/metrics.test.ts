import { readFileSync } from "node:fs";
import { join } from "node:path";
import { stemmer as npmStemmer } from "stemmer";
import { describe, expect, it } from "vitest";
import {
  exactMatch,
  lcsLength,
  normalizeAnswer,
  rougeL,
  rougeLMax,
  rougeTokens,
  summarize,
} from "../src/eval/metrics.js";
import { porterStem } from "../src/eval/porter.js";
import { REPO } from "./helpers/shared.js";

/** Stems that NLTK 3.8's PorterStemmer() produced for words of ../shared/data/sni (see its "source"). */
const NLTK = JSON.parse(readFileSync(join(REPO, "test/fixtures/nltk-porter.json"), "utf8")) as {
  source: string;
  stems: Record<string, string>;
};

describe("Porter stemmer (NLTK default mode)", () => {
  it("reproduces NLTK on every fixture word, where the stemmer package does not", () => {
    const words = Object.entries(NLTK.stems);
    expect(words.length).toBeGreaterThan(3000);
    const wrong = words.filter(([w, s]) => porterStem(w) !== s);
    expect(wrong).toEqual([]);
    // The fixture holds the 1,675 SNI words on which the npm package disagrees with NLTK (+ a few hand-picked).
    const npmWrong = words.filter(([w, s]) => npmStemmer(w) !== s).length;
    expect(npmWrong).toBeGreaterThanOrEqual(1675);
  });

  it("handles NLTK's own extensions", () => {
    expect(porterStem("dying")).toBe("die"); // irregular form
    expect(porterStem("skies")).toBe("sky");
    expect(porterStem("died")).toBe("die"); // -ied on four letters
    expect(porterStem("days")).toBe("day"); // y after a vowel stays
    expect(porterStem("used")).toBe("use"); // two-letter stem vowel-consonant counts as cvc
    expect(porterStem("hopefully")).toBe("hope"); // -fulli
    expect(porterStem("generalization")).toBe("gener");
    expect(porterStem("caresses")).toBe("caress");
    expect(porterStem("ponies")).toBe("poni");
  });
});

describe("rouge_score tokenizer", () => {
  it("lowercases, splits on non-alphanumerics and stems tokens longer than 3", () => {
    // "the" (3 chars) is never stemmed; "quickly" → "quickli" (step 1c), "were" stays (cvc).
    expect(rougeTokens("The cats were RUNNING, quickly!")).toEqual(["the", "cat", "were", "run", "quickli"]);
    expect(rougeTokens("don't")).toEqual(["don", "t"]);
    expect(rougeTokens("U.S.A. state-of-the-art 1990s")).toEqual([
      "u",
      "s",
      "a",
      "state",
      "of",
      "the",
      "art",
      "1990",
    ]);
    // Non-ASCII letters are separators, as in rouge_score (é is not in [a-z0-9]).
    expect(rougeTokens("café résumé")).toEqual(["caf", "r", "sum"]);
    expect(rougeTokens("  \n\t ")).toEqual([]);
  });
});

/** Brute force: the longest common subsequence by trying every subsequence of `a`. */
function bruteLcs(a: string[], b: string[]): number {
  let best = 0;
  for (let mask = 0; mask < 1 << a.length; mask++) {
    const sub = a.filter((_, i) => mask & (1 << i));
    if (sub.length <= best) continue;
    let j = 0;
    for (const t of b) if (j < sub.length && t === sub[j]) j++;
    if (j === sub.length) best = sub.length;
  }
  return best;
}

describe("Rouge-L", () => {
  it("matches a brute-force LCS on random token strings", () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let trial = 0; trial < 300; trial++) {
      const a = Array.from({ length: Math.floor(next() * 9) }, () => "xyz"[Math.floor(next() * 3)] as string);
      const b = Array.from({ length: Math.floor(next() * 9) }, () => "xyz"[Math.floor(next() * 3)] as string);
      expect(lcsLength(a, b)).toBe(bruteLcs(a, b));
      expect(lcsLength(b, a)).toBe(bruteLcs(a, b));
    }
  });

  it("computes P, R, F on hand-worked cases", () => {
    // pred [the cat sat on the mat], ref [the cat was on the mat]: LCS "the cat on the mat" = 5,
    // P = 5/6, R = 5/6, F = 5/6.
    const s = rougeL("the cat sat on the mat", "the cat was on the mat");
    expect(s.precision).toBeCloseTo(5 / 6, 15);
    expect(s.recall).toBeCloseTo(5 / 6, 15);
    expect(s.fmeasure).toBeCloseTo(5 / 6, 15);
    // pred [a b c d e], ref [b d f]: LCS "b d" = 2, P = 2/5, R = 2/3,
    // F = 2·(2/5)(2/3) / (2/5 + 2/3) = (8/15) / (16/15) = 1/2.
    const t = rougeL("a b c d e", "b d f");
    expect(t.precision).toBeCloseTo(0.4, 15);
    expect(t.recall).toBeCloseTo(2 / 3, 15);
    expect(t.fmeasure).toBeCloseTo(0.5, 15);
  });

  it("stems before matching", () => {
    // [polic kill the gunman] both sides after stemming (killed → kill, police → polic): F = 1.
    expect(rougeL("police killed the gunman", "Police kill the gunman.").fmeasure).toBe(1);
    // pred [the gunman kill polic], ref [polic kill the gunman]: LCS "the gunman" = 2, F = 2/4.
    expect(rougeL("the gunman kill police", "police killed the gunman").fmeasure).toBeCloseTo(0.5, 15);
  });

  it("scores 0 when prediction or reference has no tokens", () => {
    expect(rougeL("", "something").fmeasure).toBe(0);
    expect(rougeL("!!! ...", "something").fmeasure).toBe(0);
    expect(rougeL("something", "").fmeasure).toBe(0);
    expect(rougeL("", "").fmeasure).toBe(0);
  });

  it("takes the maximum over references", () => {
    // ref 2: [the cat sat], LCS 2, P = 1, R = 2/3, F = 2·(2/3)/(5/3) = 0.8.
    expect(rougeLMax("the cat", ["dog", "the cat sat"])).toBeCloseTo(0.8, 15);
    expect(rougeLMax("the cat", ["the cat sat", "The Cat!"])).toBe(1);
    expect(rougeLMax("the cat", [])).toBe(0);
  });
});

describe("exact match", () => {
  it("normalises as SQuAD: lowercase, punctuation, articles, whitespace", () => {
    expect(normalizeAnswer("The  Cat's hat!")).toBe("cats hat");
    expect(normalizeAnswer("An apple, a day.")).toBe("apple day");
    expect(normalizeAnswer("theatre")).toBe("theatre"); // articles only as whole words
    expect(normalizeAnswer("a-b")).toBe("ab"); // punctuation goes before the article rule
    expect(normalizeAnswer("the.")).toBe(""); // "the." → "the" → article
    expect(normalizeAnswer("éa a")).toBe("éa"); // é is a word character for Python's \b
    expect(normalizeAnswer("x\x1cy\u0085z")).toBe("x y z"); // Python's str.split() whitespace
  });

  it("is 1 when any reference matches after normalisation", () => {
    expect(exactMatch("An apple.", ["pear", "apple"])).toBe(1);
    expect(exactMatch("apples", ["apple"])).toBe(0);
    expect(exactMatch("", [""])).toBe(1);
    expect(exactMatch("", ["the"])).toBe(1);
    expect(exactMatch("x", [])).toBe(0);
  });
});

describe("summaries", () => {
  it("gives the mean and the population std", () => {
    expect(summarize([1, 0, 0, 1])).toEqual({ mean: 0.5, std: 0.5, n: 4 });
    const values = [0.1, 0.25, 0.9, 0.3, 0.3];
    const mean = values.reduce((a, b) => a + b) / values.length;
    const variance = values.map((v) => (v - mean) ** 2).reduce((a, b) => a + b) / values.length;
    const s = summarize(values);
    expect(s.mean).toBeCloseTo(mean, 15);
    expect(s.std).toBeCloseTo(Math.sqrt(variance), 15);
    expect(summarize([]).n).toBe(0);
    expect(Number.isNaN(summarize([]).mean)).toBe(true);
  });
});
