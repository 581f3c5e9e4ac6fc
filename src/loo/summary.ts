import type { Metric } from "../distances/metric.js";
import type { MixMode } from "../merge/mixAdapters.js";
import type { WeightMethod } from "../weights/methods.js";
import { LOO_NUMBERS, type LooNumber, type LooScores } from "./scores.js";

/** What the summary reads of a leave-one-out result row. */
export interface SummaryRow {
  metric: Metric;
  method: WeightMethod;
  merges: Partial<Record<MixMode, LooScores>>;
}

export interface Cell {
  mean: number;
  /** Population standard deviation (ddof 0, numpy's default) over the targets. */
  std: number;
  count: number;
}

export const NUMBER_TITLES: Record<LooNumber, string> = {
  paramCosine: "cosine similarity, flattened parameters (higher is better)",
  paramRelL2: "relative L2 error, flattened parameters (lower is better)",
  deltaCosine: "cosine similarity, ΔW (higher is better)",
  deltaRelL2: "relative L2 error, ΔW (lower is better)",
};

/** Mean ± std over targets of each number, by merge × method × metric (the paper's Table 1 cells). */
export function summarize(rows: SummaryRow[]): Map<string, Cell> {
  const values = new Map<string, number[]>();
  for (const row of rows) {
    for (const [merge, scores] of Object.entries(row.merges) as [MixMode, LooScores][]) {
      for (const number of LOO_NUMBERS) {
        const v = scores[number];
        if (v === null || !Number.isFinite(v)) continue;
        const key = cellKey(merge, number, row.method, row.metric);
        const list = values.get(key);
        if (list) list.push(v);
        else values.set(key, [v]);
      }
    }
  }
  const cells = new Map<string, Cell>();
  for (const [key, list] of values) {
    const mean = list.reduce((s, v) => s + v, 0) / list.length;
    const ss = list.reduce((s, v) => s + (v - mean) * (v - mean), 0);
    cells.set(key, { mean, std: Math.sqrt(ss / list.length), count: list.length });
  }
  return cells;
}

export function cellKey(merge: MixMode, number: LooNumber, method: WeightMethod, metric: Metric): string {
  return `${merge}|${number}|${method}|${metric}`;
}

export function formatCell(cell: Cell | undefined): string {
  return cell ? `${cell.mean.toFixed(4)} ± ${cell.std.toFixed(4)}` : "—";
}

export interface SummaryLayout {
  merges: MixMode[];
  methods: WeightMethod[];
  metrics: Metric[];
  /** Lines printed above the tables (bank, counts, top-k used, skipped configurations). */
  notes: string[];
}

/** One Markdown table per merge mode and number: rows = methods, columns = metrics. */
export function summaryMarkdown(cells: Map<string, Cell>, layout: SummaryLayout): string {
  const lines = ["# Leave-one-out summary", "", ...layout.notes.map((n) => `- ${n}`), ""];
  for (const merge of layout.merges) {
    for (const number of LOO_NUMBERS) {
      if (
        !layout.methods.some((me) => layout.metrics.some((mt) => cells.has(cellKey(merge, number, me, mt))))
      ) {
        continue;
      }
      lines.push(`## ${merge}: ${NUMBER_TITLES[number]}`, "");
      lines.push(`| method | ${layout.metrics.join(" | ")} |`);
      lines.push(`|---|${layout.metrics.map(() => "---").join("|")}|`);
      for (const method of layout.methods) {
        const row = layout.metrics.map((metric) =>
          formatCell(cells.get(cellKey(merge, number, method, metric))),
        );
        lines.push(`| ${method} | ${row.join(" | ")} |`);
      }
      lines.push("");
    }
  }
  return `${lines.join("\n")}\n`;
}
