import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loramixVersion } from "../bank/store.js";
import { coefficientHeatmap, largest } from "../report/heatmap.js";
import { textTable } from "../report/textTable.js";
import { writeDirAtomic } from "../util/atomic.js";
import type { TargetRow } from "./evaluate.js";
import { demoHtml } from "./reportHtml.js";
import type { TargetSelection } from "./select.js";
import { type DemoSetup, targetRow } from "./setup.js";
import {
  type FamilyShares,
  familyShareRows,
  gapRows,
  readingNotes,
  recommendation,
  type ScoreGrid,
  type TableLayout,
  tableRows,
  verdict,
} from "./tables.js";
import { meanMaxWeight, type WeightRows } from "./weights.js";

/** Everything the demo measured, as the report step needs it. */
export interface DemoMeasurements {
  layout: TableLayout;
  configs: string[];
  grid: ScoreGrid;
  familyShares: FamilyShares;
  weightRows: WeightRows;
  selections: Record<string, TargetSelection>;
  rows: TargetRow[];
  notes: string[];
}

/** tables.txt: the paper's Tables 1 and 3, the gap shares, the family weights and the verdict. */
export function demoTables(setup: DemoSetup, m: DemoMeasurements): string {
  const { grid, configs, layout } = m;
  const sections: [string, string[][]][] = [
    ["Table 1 — Rouge-L (mean ± std over tasks)", tableRows(grid, "rougeL", layout)],
    ["Table 3 — exact match (mean ± std over tasks)", tableRows(grid, "exactMatch", layout)],
    ["Share of the base → trained gap closed (Rouge-L)", gapRows(grid, "rougeL", layout)],
    ["Share of the base → trained gap closed (exact match)", gapRows(grid, "exactMatch", layout)],
    [
      "Weight on the target's family (the other tasks that share its answers)",
      familyShareRows(m.familyShares, layout),
    ],
  ];
  return [
    ...sections.flatMap(([title, rows]) => [title, textTable(rows), ""]),
    verdict(grid, configs, "rougeL"),
    verdict(grid, configs, "exactMatch"),
    "",
    recommendation(grid, configs, "rougeL"),
    recommendation(grid, configs, "exactMatch"),
    ...readingNotes(grid, configs, meanMaxWeight(setup, m.weightRows)),
  ].join("\n");
}

/**
 * Writes the demo's folder atomically: results.json, tables.txt, report.html and one coefficient
 * heatmap PNG per configuration, all on one colour scale so equal colours mean equal weights.
 */
export async function writeDemoReport(
  out: string,
  setup: DemoSetup,
  m: DemoMeasurements,
  tables: string,
): Promise<void> {
  const { ids, targets } = setup;
  const n = ids.length;
  const targetIdx = targets.map((t) => setup.column.get(t) as number);
  const coefficients = m.configs.map((c) => {
    const w = m.weightRows.get(c) as Float64Array;
    const values = new Float64Array(targets.length * n);
    for (const [r, task] of targets.entries()) values.set(targetRow(setup, w, task), r * n);
    return values;
  });
  const scaleMax = Math.max(0, ...coefficients.map(largest));
  const figures = m.configs.map((c, k) => {
    const values = coefficients[k] as Float64Array;
    const map = coefficientHeatmap(values, targets.length, n, (r, col) => col === targetIdx[r], scaleMax);
    return {
      config: c,
      file: `heatmap-${c.replace("/", "-")}.png`,
      png: map.png,
      values,
      ownColumn: targetIdx,
    };
  });
  const results = {
    loramix: loramixVersion(),
    created: new Date().toISOString(),
    testbed: setup.paths.dir,
    eval: setup.settings,
    notes: m.notes,
    candidates: ids,
    targets,
    configurations: m.configs,
    weights: Object.fromEntries(
      [...m.weightRows].map(([k, w]) => [
        k,
        Object.fromEntries(targets.map((task) => [task, [...targetRow(setup, w, task)]])),
      ]),
    ),
    selections: m.selections,
    familyWeight: Object.fromEntries([...m.familyShares].map(([v, s]) => [v, Object.fromEntries(s)])),
    rows: m.rows,
    tables,
  };
  const html = demoHtml({
    grid: m.grid,
    familyShares: m.familyShares,
    layout: m.layout,
    rows: m.rows,
    notes: m.notes,
    figures,
    scaleMax,
    configs: m.configs,
    candidates: ids,
  });
  await writeDirAtomic(
    out,
    async (dir) => {
      await writeFile(join(dir, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
      await writeFile(join(dir, "tables.txt"), `${tables}\n`);
      await writeFile(join(dir, "report.html"), html);
      for (const f of figures) await writeFile(join(dir, f.file), f.png);
    },
    "demo",
  );
}
