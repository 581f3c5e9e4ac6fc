import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoHtml } from "../src/demo/reportHtml.js";
import type { TargetRow } from "../src/demo/run.js";
import { configName, type ScoreGrid } from "../src/demo/tables.js";
import { coefficientHeatmap } from "../src/loo/heatmap.js";

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
    "select-loss": [0.7, 0.5],
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
  const figures = configs.map((config, k) => {
    const w = [0, 0.25 + k * 0.1, 0.75 - k * 0.1, 0.5, 0, 0.5];
    const map = coefficientHeatmap(w, 2, 3, (r, c) => c === r);
    return { config, file: `${config}.png`, png: map.png, max: map.max };
  });
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
    configs,
    candidates: ["task1", "task2", "task3"],
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
    expect(perTask[1]?.[2]).toBe("0.10±0.05 / 0.05±0.13");
    expect(perTask[1]?.[3]).toBe("0.50±0.05 / 0.25");
    expect(perTask[0]).toContain("select-loss");
    expect(rouge.find((r) => r[0]?.includes("--select loss"))?.[1]).toBe("0.600 ± 0.100");

    const images = await page.$$eval("img.heatmap", (imgs) =>
      // The project compiles without the DOM library, so the image fields are typed here.
      (imgs as unknown as { complete: boolean; naturalWidth: number; naturalHeight: number }[]).map((i) => ({
        ok: i.complete,
        w: i.naturalWidth,
        h: i.naturalHeight,
      })),
    );
    expect(images).toHaveLength(2);
    for (const img of images) {
      expect(img.ok).toBe(true);
      // 3 columns × 2 rows of square cells.
      expect(img.w).toBeGreaterThan(0);
      expect(img.w / img.h).toBeCloseTo(1.5, 5);
    }
    const verdict = await page.textContent(".verdict");
    // select-loss 0.6 beats the best paper configuration (normalized/js, 0.5) but not trained (0.8).
    expect(verdict).toContain("--select loss scores 0.600");
    expect(verdict).toContain("the best paper configuration (normalized/js)");
    expect(verdict).toContain("not the tasks' own trained adapters (0.800)");
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  }, 60_000);
});
