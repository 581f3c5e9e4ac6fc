/** The pieces every self-contained report page is made of (no scripts, nothing fetched). */

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** rows[0] is the header. Cells are text; escaped here. */
export function htmlTable(rows: string[][], id?: string): string {
  const [header, ...body] = rows;
  return (
    `<table${id === undefined ? "" : ` id="${id}"`}><thead><tr>${(header ?? []).map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr></thead><tbody>` +
    body.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("") +
    "</tbody></table>"
  );
}
