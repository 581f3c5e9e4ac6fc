import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { coefficientHeatmap } from "../report/heatmap.js";
import { writeDirAtomic } from "../util/atomic.js";
import type { LooRow } from "./predict.js";
import { type HeatmapFigure, summaryHtml } from "./reportHtml.js";
import { type SummaryLayout, summarize, summaryMarkdown } from "./summary.js";
import { heatmapName, type LooWeights } from "./weights.js";

/**
 * Writes the leave-one-out folder atomically: results.json (`results`), one coefficient heatmap
 * PNG per configuration, summary.md and summary.html. Returns summary.md's text.
 */
export async function writeLooReport(
  out: string,
  {
    rows,
    weights,
    targets,
    candidates,
    layout,
    results,
  }: {
    rows: LooRow[];
    weights: LooWeights[];
    /** Each target's column among the candidates (its own adapter, outlined in the heatmaps). */
    targets: number[];
    candidates: number;
    layout: SummaryLayout;
    results: object;
  },
): Promise<string> {
  const cells = summarize(rows);
  const summary = summaryMarkdown(cells, layout);
  const figures: (HeatmapFigure & { file: string })[] = weights.map((w) => {
    const values = new Float64Array(w.rows.length * candidates);
    for (const [t, row] of w.rows.entries()) values.set(row, t * candidates);
    const map = coefficientHeatmap(values, w.rows.length, candidates, (r, c) => c === targets[r]);
    return {
      title: `${w.metric} / ${w.method}`,
      png: map.png,
      max: map.max,
      file: heatmapName(w.metric, w.method),
    };
  });
  const html = summaryHtml(cells, layout, figures);
  await writeDirAtomic(
    out,
    async (tmp) => {
      await writeFile(join(tmp, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
      for (const f of figures) await writeFile(join(tmp, f.file), f.png);
      await writeFile(join(tmp, "summary.md"), summary);
      await writeFile(join(tmp, "summary.html"), html);
    },
    "loo",
  );
  return summary;
}
