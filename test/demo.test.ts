import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitOf } from "../src/datasets/split.js";
import { type DemoResult, runDemo } from "../src/demo/run.js";
import {
  formatSummary,
  readingNotes,
  recommendation,
  type ScoreGrid,
  variantSummary,
} from "../src/demo/tables.js";
import { exactMatch, normalizeAnswer, rougeLMax } from "../src/eval/metrics.js";
import type { TaskSelection } from "../src/testbed/tasks.js";
import { REPO, SNI_DIR, tempDir } from "./helpers/shared.js";

/** The shipped testbed (built by `loramix testbed build`, committed with the repository). */
const TESTBED = join(REPO, "testbed");
const LIMIT = 5;

describe("loramix demo on the shipped testbed (2 held-out tasks, 5 records, 2 configurations)", () => {
  let result: DemoResult;
  let out: string;
  let cleanup: () => Promise<void>;
  let targets: string[];
  let saved: { weights: Record<string, Record<string, number[]>>; candidates: string[]; tables: string };

  beforeAll(async () => {
    const selection = JSON.parse(await readFile(join(TESTBED, "selection.json"), "utf8")) as TaskSelection;
    targets = selection.heldOut.slice(0, 2);
    ({ dir: out, cleanup } = await tempDir("loramix-demo-"));
    result = await runDemo({
      testbed: TESTBED,
      out: join(out, "demo"),
      targets,
      limit: LIMIT,
      metrics: ["js"],
      methods: ["normalized", "attentional"],
      // A few steps suffice to check that the fine-tuned default and its no-bank control are scored.
      finetune: 4,
    });
    saved = JSON.parse(await readFile(join(out, "demo", "results.json"), "utf8"));
  }, 240_000);
  afterAll(() => cleanup?.());

  it("scores every variant from its own predictions (Rouge-L and EM recomputed from results.json)", () => {
    expect(result.rows.map((r) => r.task)).toEqual(targets);
    for (const row of result.rows) {
      expect(row.references).toHaveLength(LIMIT);
      for (const variant of [
        "base",
        "trained",
        "nearest",
        "uniform",
        "normalized/js",
        "attentional/js",
        "finetuned",
        "scratch",
      ]) {
        const s = row.scores[variant];
        expect(s, variant).toBeDefined();
        const preds = s?.predictions ?? [];
        expect(preds).toHaveLength(LIMIT);
        const rouge = preds.reduce((a, p, k) => a + rougeLMax(p, row.references[k] ?? []), 0) / LIMIT;
        const em = preds.reduce((a, p, k) => a + exactMatch(p, row.references[k] ?? []), 0) / LIMIT;
        expect(s?.rougeL).toBeCloseTo(rouge, 12);
        expect(s?.exactMatch).toBeCloseTo(em, 12);
      }
    }
  });

  it("prints table cells as mean ± population std over the tasks' means", () => {
    for (const [variant, score] of [
      ["normalized/js", "rougeL"],
      ["attentional/js", "exactMatch"],
      ["trained", "rougeL"],
    ] as const) {
      const means = result.rows.map((r) => r.scores[variant]?.[score] as number);
      const mean = (means[0]! + means[1]!) / 2;
      const std = Math.abs(means[0]! - means[1]!) / 2;
      expect(variantSummary(result.grid, variant, score)?.mean).toBeCloseTo(mean, 12);
      expect(result.tables).toContain(formatSummary({ mean, std, n: 2 }));
    }
    expect(saved.tables).toBe(result.tables);
    expect(result.tables).toMatch(/Table 1 — Rouge-L/);
    expect(result.tables).toMatch(/Table 3 — exact match/);
  });

  it("answers the majority label found by an independent count of the task file", async () => {
    for (const row of result.rows) {
      const task = JSON.parse(await readFile(join(SNI_DIR, `${row.task}.json`), "utf8")) as {
        Instances: { id: string; output: string[] }[];
      };
      const counts = new Map<string, number>();
      const test: string[][] = [];
      task.Instances.forEach((inst, k) => {
        const split = splitOf(inst.id, k);
        if (split === "train")
          counts.set(inst.output[0]!.trim(), (counts.get(inst.output[0]!.trim()) ?? 0) + 1);
        if (split === "test") test.push(inst.output);
      });
      const top = Math.max(...counts.values());
      const winners = [...counts]
        .filter(([, c]) => c === top)
        .map(([o]) => o)
        .sort();
      expect(row.majorityAnswer).toBe(winners[0]);
      const hits = test
        .slice(0, LIMIT)
        .filter((refs) => refs.some((r) => normalizeAnswer(r) === normalizeAnswer(winners[0]!)));
      expect(row.scores.majority?.exactMatch).toBeCloseTo(hits.length / LIMIT, 12);
    }
  });

  it("masks each target's own adapter and keeps the weights a distribution", () => {
    for (const config of ["normalized/js", "attentional/js", "uniform", "nearest"]) {
      for (const t of targets) {
        const w = saved.weights[config]?.[t] as number[];
        expect(w).toHaveLength(saved.candidates.length);
        expect(w[saved.candidates.indexOf(t)]).toBe(0);
        expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      }
    }
    for (const t of targets) expect(saved.weights.nearest?.[t]?.filter((x) => x === 1)).toHaveLength(1);
  });

  it("reports the weight each configuration puts on the target's family, from the saved weights", async () => {
    const selection = JSON.parse(await readFile(join(TESTBED, "selection.json"), "utf8")) as TaskSelection;
    const familyOf = new Map(selection.families.flatMap((f) => f.tasks.map((t) => [t, f.key])));
    for (const config of ["normalized/js", "uniform", "nearest"]) {
      for (const t of targets) {
        const w = saved.weights[config]?.[t] as number[];
        const share = saved.candidates.reduce(
          (a, id, j) => a + (familyOf.get(id) === familyOf.get(t) ? (w[j] as number) : 0),
          0,
        );
        expect(result.familyShares.get(config)?.get(t)).toBeCloseTo(share, 12);
      }
    }
    // Uniform weights: each sibling gets 1/(n − 1).
    const t0 = targets[0] as string;
    const siblings = saved.candidates.filter((id) => id !== t0 && familyOf.get(id) === familyOf.get(t0));
    expect(result.familyShares.get("uniform")?.get(t0)).toBeCloseTo(
      siblings.length / (saved.candidates.length - 1),
      12,
    );
    expect(result.tables).toMatch(/Weight on the target's family/);
  });

  it("writes the report with one heatmap per configuration", () => {
    for (const f of [
      "report.html",
      "tables.txt",
      "heatmap-normalized-js.png",
      "heatmap-attentional-js.png",
    ]) {
      expect(existsSync(join(out, "demo", f)), f).toBe(true);
    }
  });
});

describe("the demo's reading notes", () => {
  const grid = (means: Record<string, number>): ScoreGrid =>
    new Map(
      Object.entries(means).map(([v, m]) => [
        v,
        new Map([
          ["t1", { rougeL: m, exactMatch: m }],
          ["t2", { rougeL: m, exactMatch: m }],
        ]),
      ]),
    );

  it("says when the nearest adapter beats every mixture, when the best mix is one adapter, and what >100% means", () => {
    const g = grid({
      base: 0.1,
      trained: 0.5,
      nearest: 0.4,
      majority: 0.6,
      "normalized/js": 0.2,
      "attentional/wd": 0.3,
    });
    const notes = readingNotes(g, ["normalized/js", "attentional/wd"], new Map([["attentional/wd", 0.995]]));
    expect(notes).toEqual([
      "The nearest single adapter (0.400) beats every mixture of the paper's configurations (best attentional/wd, 0.300): on this bank, mixing dilutes the adapter that fits.",
      "The best mixture, attentional/wd, puts 0.995 of its weight on one adapter (mean over targets): it is effectively a single adapter, not a mix.",
      // (0.6 − 0.1) / (0.5 − 0.1) = 125%.
      "A share above 100% (majority) means scoring above the tasks' own trained adapters, which are the 100% mark, not a ceiling.",
    ]);
    // A real mix that beats the nearest adapter, below the trained ones: nothing to warn about.
    const quiet = grid({ base: 0.1, trained: 0.5, nearest: 0.2, majority: 0.3, "normalized/js": 0.4 });
    expect(readingNotes(quiet, ["normalized/js"], new Map([["normalized/js", 0.4]]))).toEqual([]);
  });

  it("judges the default (--select fit) against --select loss and the baselines; --select loss when fit was skipped", () => {
    const means = { base: 0.1, trained: 0.5, nearest: 0.2, majority: 0.45, "normalized/js": 0.15 };
    const both = grid({ ...means, "select-loss": 0.3, "select-fit": 0.36 });
    const verdict = recommendation(both, ["normalized/js"], "rougeL");
    // (0.36 − 0.1) / (0.5 − 0.1) = 65%, below the majority answer: not a recommendation.
    expect(verdict).toMatch(
      /^Rouge-L: --select fit --finetune 0 scores 0\.360 and closes 65% of the base → trained gap\./,
    );
    expect(verdict).toContain("It beats the base model, the nearest single adapter, --select loss,");
    expect(verdict).toContain("not the majority answer (0.450), the tasks' own trained adapters (0.500)");
    expect(verdict).toContain(
      "; not the majority answer (0.450), the tasks' own trained adapters (0.500). Of the adapters generated here, use --select fit --finetune 0 (it needs only the base model and the dataset's train records), and check it",
    );
    // A generated adapter that scores higher is named instead.
    const nearer = recommendation(
      grid({ ...means, nearest: 0.4, "select-fit": 0.36 }),
      ["normalized/js"],
      "rougeL",
    );
    expect(nearer).toContain(
      "Check before relying on --select fit --finetune 0: the nearest single adapter (0.400) scored higher here.",
    );
    const noFit = grid({ ...means, majority: 0.2, "select-loss": 0.3 });
    const loss = recommendation(noFit, ["normalized/js"], "exactMatch");
    expect(loss).toMatch(/^exact match: --select loss --finetune 0 scores 0\.300/);
    expect(loss).not.toContain("--select fit");
    expect(loss).toContain(
      "Use --select loss --finetune 0: it needs only the base model and the dataset's train records.",
    );
  });

  it("judges the fine-tuned default against the mix it started from and the same steps without the bank", () => {
    const means = { base: 0.1, trained: 0.5, nearest: 0.2, majority: 0.45, "normalized/js": 0.15 };
    const g = grid({ ...means, "select-loss": 0.3, "select-fit": 0.36, scratch: 0.2, finetuned: 0.55 });
    const verdict = recommendation(g, ["normalized/js"], "rougeL");
    // (0.55 − 0.1) / (0.5 − 0.1) = 113%: above every row, the own adapters included.
    expect(verdict).toMatch(
      /^Rouge-L: loramix's default \(--select fit \+ fine-tune\) scores 0\.550 and closes 113% of the base → trained gap\./,
    );
    expect(verdict).toContain(
      "the same mix without fine-tuning, the same training steps without the bank, --select loss,",
    );
    expect(verdict).toContain("the tasks' own trained adapters. Use loramix's default");
    // The control beating it means the bank added nothing: said, not recommended.
    const worse = recommendation(
      grid({ ...means, "select-fit": 0.36, scratch: 0.5, finetuned: 0.4 }),
      ["normalized/js"],
      "rougeL",
    );
    expect(worse).toContain(
      "Check before relying on loramix's default (--select fit + fine-tune): the same training steps without the bank (0.500) scored higher here.",
    );
  });
});
