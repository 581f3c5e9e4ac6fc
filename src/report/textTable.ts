/**
 * Fixed-width text for a terminal or a .txt file (first row = header). By default the first
 * column is left-aligned and the others, numbers, right-aligned, with a dashed rule under the header.
 */
export function textTable(
  rows: string[][],
  {
    rule = true,
    alignRight = (column: number) => column > 0,
  }: { rule?: boolean; alignRight?: (column: number) => boolean } = {},
): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  const line = (r: string[]) =>
    r
      .map((c, i) => (alignRight(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  const header = rows[0] ?? [];
  const lines = rows.map(line);
  if (rule && rows.length > 0)
    lines.splice(
      1,
      0,
      widths
        .slice(0, header.length)
        .map((w) => "-".repeat(w))
        .join("  "),
    );
  return lines.join("\n");
}
