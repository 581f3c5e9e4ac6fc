import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TargetRow } from "../src/demo/evaluate.js";
import { demoHtml } from "../src/demo/reportHtml.js";
import { configName, type ScoreGrid } from "../src/demo/tables.js";

const CHROMIUM = "/usr/bin/chromium";
// A missing browser fails this file with one line (Vitest would otherwise report its tests as skipped).
if (!existsSync(CHROMIUM)) {
  throw new Error(
    `report.test.ts needs Debian's Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does)`,
  );
}

/** A report for 2 tasks × 2 configurations, with scores chosen so the rendered cells are known. */
function fixture(): string {
  const tasks = ["task1", "task2"];
  const configs = [configName("normalized", "js"), configName("attentional", "kl")];
  const values: Record<string, [number, number]> = {
    base: [0.1, 0.3],
    majority: [0.5, 0.5],
    nearest: [0.2, 0.2],
    uniform: [0.4, 0.2],
    trained: [0.9, 0.7],
    "normalized/js": [0.6, 0.4],
    "attentional/kl": [0.2, 0.0],
    "select-fit": [0.7, 0.5],
  };
  const grid: ScoreGrid = new Map(
    Object.entries(values).map(([v, s]) => [
      v,
      new Map(tasks.map((t, i) => [t, { rougeL: s[i] as number, exactMatch: (s[i] as number) / 2 }])),
    ]),
  );
  const rows: TargetRow[] = tasks.map((task, i) => ({
    task,
    family: "no/yes",
    majorityAnswer: "No",
    references: [["No"]],
    scores: Object.fromEntries(
      Object.entries(values).map(([v, s]) => [
        v,
        {
          rougeL: s[i] as number,
          exactMatch: (s[i] as number) / 2,
          rougeLCi: 0.05,
          // One record's interval is undefined: the cell shows the mean alone.
          exactMatchCi: v === "majority" ? Number.NaN : 0.125,
          predictions: ["No"],
        },
      ]),
    ),
  }));
  const figures = configs.map((config, k) => ({
    config,
    values: Float64Array.from([0, 0.25 + k * 0.1, 0.75 - k * 0.1, 0.5, 0, 0.5]),
    ownColumn: [0, 1],
  }));
  const shares: Record<string, [number, number]> = {
    "normalized/js": [0.3, 0.5],
    nearest: [1, 0],
    uniform: [0.5, 0.5],
  };
  return demoHtml({
    grid,
    familyShares: new Map(
      Object.entries(shares).map(([v, s]) => [v, new Map(tasks.map((t, i) => [t, s[i] as number]))]),
    ),
    layout: { metrics: ["js", "kl"], methods: ["normalized", "attentional"] },
    rows,
    notes: ["synthetic report"],
    figures,
    scaleMax: 0.75,
    configs,
    candidates: ["task1", "task2", "task3"],
  });
}

/**
 * A report of the demo's real size: 11 targets with long Super-NI names, 61 candidates, the 12
 * paper configurations and loramix's rows, scores with two decimals and intervals everywhere.
 */
function fullSize(): string {
  // The testbed's longest held-out name has 54 characters, its longest family 32.
  const tasks = Array.from({ length: 11 }, (_, i) =>
    `task${1100 + i}_a_long_super_natural_instructions_task_name_${i}`.padEnd(54, "x"),
  );
  const candidates = Array.from({ length: 61 }, (_, i) => `task${200 + i}_candidate_${i}`);
  const methods = ["attentional", "normalized", "neural"] as const;
  const metrics = ["wd", "kl", "js", "mmd"] as const;
  const configs = methods.flatMap((m) => metrics.map((t) => configName(m, t)));
  const variants = [
    "base",
    "majority",
    "nearest",
    "uniform",
    "trained",
    "nearest-output",
    "select-loss",
    "select-fit",
    "scratch",
    "finetuned",
    ...configs,
  ];
  const score = (v: number, t: number) => ((v * 7 + t * 3) % 10) / 10 + 0.05;
  const grid: ScoreGrid = new Map(
    variants.map((v, vi) => [
      v,
      new Map(tasks.map((t, ti) => [t, { rougeL: score(vi, ti), exactMatch: score(vi, ti) / 2 }])),
    ]),
  );
  const rows: TargetRow[] = tasks.map((task, ti) => ({
    task,
    family: "contradiction/entailment/neutral",
    majorityAnswer: "False",
    references: Array.from({ length: 50 }, () => ["False"]),
    scores: Object.fromEntries(
      variants.map((v, vi) => [
        v,
        {
          rougeL: score(vi, ti),
          exactMatch: score(vi, ti) / 2,
          rougeLCi: 0.13,
          exactMatchCi: 0.14,
          predictions: [],
        },
      ]),
    ),
  }));
  return demoHtml({
    grid,
    familyShares: new Map(),
    layout: { metrics: [...metrics], methods: [...methods] },
    rows,
    notes: ["full-size report"],
    figures: configs.map((config) => ({
      config,
      values: Float64Array.from({ length: 11 * 61 }, (_, k) => (k % 61) / 61 / 10),
      ownColumn: tasks.map((_, i) => i),
    })),
    scaleMax: 0.1,
    configs,
    candidates,
  });
}

describe("demo report.html in headless Chromium", () => {
  let browser: BrowserContext;
  let profile: string;
  beforeAll(async () => {
    // A fresh profile per run (playwright passes it as --user-data-dir).
    profile = await mkdtemp(join(tmpdir(), "loramix-chromium-"));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await rm(profile, { recursive: true, force: true });
  });

  it("renders both tables, the gap tables, decoded heatmaps and the per-task rows without console errors", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    // Anything fetched would be a bug: the page must be self-contained.
    const requests: string[] = [];
    page.on("request", (r) => !r.url().startsWith("data:") && requests.push(r.url()));
    await page.setContent(fixture(), { waitUntil: "load" });

    const cells = (id: string) =>
      page.$$eval(`#${id} tr`, (trs) =>
        trs.map((tr) => [...tr.querySelectorAll("th,td")].map((c) => c.textContent ?? "")),
      );
    const rouge = await cells("table-rouge");
    expect(rouge[0]).toEqual(["method", "JS", "KL"]);
    // normalized/js: mean of 0.6 and 0.4, population std 0.1.
    expect(rouge[1]).toEqual(["normalized", "0.500 ± 0.100", "—"]);
    expect(rouge[2]).toEqual(["attentional", "—", "0.100 ± 0.100"]);
    expect(rouge.find((r) => r[0]?.startsWith("the task's own"))?.[1]).toBe("0.800 ± 0.100");
    const em = await cells("table-em");
    expect(em[1]).toEqual(["normalized", "0.250 ± 0.050", "—"]);
    // (0.5 − 0.2) / (0.8 − 0.2) = 50% of the gap.
    expect((await cells("gap-rouge"))[1]).toEqual(["normalized", "50%", "—"]);
    const family = await cells("family-weight");
    expect(family[1]).toEqual(["normalized", "0.400 ± 0.100", "—"]);
    expect(family.find((r) => r[0]?.startsWith("nearest"))?.[1]).toBe("0.500 ± 0.500");
    const perTask = await cells("per-task");
    expect(perTask).toHaveLength(3);
    expect(perTask[1]?.slice(0, 2)).toEqual(["task1 (1)", "no/yes"]);
    // Columns: base, majority, ...: the mean with its 95% half-width.
    expect(perTask[1]?.[2]).toBe("0.10±0.05");
    expect(perTask[1]?.[3]).toBe("0.50±0.05");
    expect(perTask[0]).not.toContain("select-fit");
    expect((await cells("per-task-loramix"))[0]).toEqual(["task (n)", "select-fit"]);
    const perTaskEm = await cells("per-task-em");
    expect(perTaskEm[1]?.[2]).toBe("0.05±0.13");
    // One record's interval is undefined: the mean alone.
    expect(perTaskEm[1]?.[3]).toBe("0.25");
    // No family column beside the configurations.
    expect((await cells("per-task-configs"))[0]).toEqual(["task (n)", "norm/JS", "att/KL"]);
    expect(rouge.find((r) => r[0]?.includes("--select fit"))?.[1]).toBe("0.600 ± 0.100");

    // Heatmaps: labelled rows and columns, one shared scale, the colour bar with it.
    const maps = await page.$$eval("svg.heatmap", (svgs) =>
      svgs.map((svg) => ({
        scale: svg.getAttribute("data-scale-max"),
        cells: svg.querySelectorAll("rect").length,
        rows: [...svg.querySelectorAll(".row-label")].map((t) => t.lastChild?.textContent),
        cols: [...svg.querySelectorAll(".col-label")].map((t) => t.lastChild?.textContent),
        fills: [...svg.querySelectorAll("rect")].map((r) => r.getAttribute("fill")),
      })),
    );
    expect(maps).toHaveLength(2);
    for (const m of maps) {
      expect(m.scale).toBe("0.75");
      expect(m.cells).toBe(6);
      expect(m.rows).toEqual(["task1", "task2"]);
      expect(m.cols).toEqual(["task1", "task2", "task3"]);
    }
    // The same weight gets the same colour in both figures (0.5 at row 1, cols 0 and 2).
    expect(maps[0]?.fills[3]).toBe(maps[1]?.fills[3]);
    // Own adapters are grey.
    expect(maps[0]?.fills[0]).toBe("rgb(160,160,160)");
    expect(await page.getAttribute("svg.colour-bar", "data-scale-max")).toBe("0.75");
    // Gap chart: one bar per row with a mean, one dot per task per row.
    const gap = await page.$$eval("svg.gap-chart", (svgs) =>
      svgs.map((svg) => ({
        labels: [...svg.querySelectorAll(".bar-label")].map((t) => t.textContent),
        points: svg.querySelectorAll(".task-point").length,
      })),
    );
    expect(gap).toHaveLength(2);
    expect(gap[0]?.labels).toEqual([
      "loramix: --select fit --finetune 0 (mix only)",
      "normalized/js",
      "attentional/kl",
      "nearest single adapter (JS, top-1)",
      "uniform average of the bank",
      "majority answer of the train split",
    ]);
    expect(gap[0]?.points).toBe(6 * 2);
    const verdict = await page.textContent(".verdict");
    // select-fit 0.6 beats the best paper configuration (normalized/js, 0.5) but not trained (0.8).
    expect(verdict).toContain("--select fit --finetune 0 scores 0.600");
    expect(verdict).toContain("the best paper configuration (normalized/js)");
    expect(verdict).toContain("not the tasks' own trained adapters (0.800)");
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  }, 60_000);

  it("at the demo's real size, a 1400 px screenshot shows every table column, with no cell wrapped", async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1400, height: 1000 });
    await page.setContent(fullSize(), { waitUntil: "load" });
    const layout = await page.evaluate(() => {
      // The project compiles without the DOM library: the few fields used are typed here.
      const doc = (
        globalThis as unknown as {
          document: {
            documentElement: { scrollWidth: number };
            querySelectorAll(s: string): ArrayLike<{
              id: string;
              getBoundingClientRect(): { right: number };
              querySelectorAll(
                s: string,
              ): ArrayLike<{ getClientRects(): ArrayLike<unknown>; textContent: string | null }>;
            }>;
          };
        }
      ).document;
      return {
        pageWidth: doc.documentElement.scrollWidth,
        tables: Array.from(doc.querySelectorAll("table")).map((t) => ({
          id: t.id,
          right: t.getBoundingClientRect().right,
          // A wrapped cell's text has more than one line box.
          wrapped: Array.from(t.querySelectorAll("td,th")).filter((c) => c.getClientRects().length > 1)
            .length,
        })),
        svgs: Array.from(doc.querySelectorAll("svg")).map((s) => ({
          id: s.id,
          right: s.getBoundingClientRect().right,
        })),
      };
    });
    expect(layout.pageWidth, JSON.stringify(layout)).toBeLessThanOrEqual(1400);
    expect(layout.tables.map((t) => t.id)).toEqual(
      expect.arrayContaining([
        "per-task",
        "per-task-loramix",
        "per-task-configs",
        "per-task-em",
        "per-task-loramix-em",
        "per-task-configs-em",
      ]),
    );
    for (const t of layout.tables) {
      expect(t.right).toBeLessThanOrEqual(1400);
      expect(t.wrapped).toBe(0);
    }
    for (const s of layout.svgs) expect(s.right).toBeLessThanOrEqual(1400);
    // The screenshot itself: as wide as the viewport, nothing cut off to the right.
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.readUInt32BE(16)).toBe(1400);
    await page.close();
  }, 60_000);
});
