#!/usr/bin/env node
// Per-family means of a testbed's references.json (own adapter, majority answer, base model), for
// testbed/TRAINING.md: node bench/reference-families.mjs OLD/references.json [NEW/references.json]
import { readFileSync } from "node:fs";

const files = process.argv.slice(2);
if (files.length === 0) throw new Error("usage: reference-families.mjs references.json [another]");
const tables = files.map((f) => JSON.parse(readFileSync(f, "utf8")));
const families = [...new Set(Object.values(tables[0]).map((r) => r.family))].sort();
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const cell = (refs, family, key, score) => {
  const rows = Object.values(refs).filter((r) => family === "all" || r.family === family);
  return mean(rows.map((r) => r[key][score].mean)).toFixed(3);
};
for (const score of ["rougeL", "exactMatch"]) {
  const head = files.map((_, i) => `own ${i + 1} | majority ${i + 1} | base ${i + 1}`).join(" | ");
  console.log(`\n${score}\n\n| family | tasks | ${head} |`);
  console.log(`|---|---:|${files.map(() => "---:|---:|---:").join("|")}|`);
  for (const family of [...families, "all"]) {
    const n = Object.values(tables[0]).filter((r) => family === "all" || r.family === family).length;
    const cells = tables.flatMap((t) =>
      ["trained", "majority", "base"].map((k) => cell(t, family, k, score)),
    );
    console.log(`| ${family} | ${n} | ${cells.join(" | ")} |`);
  }
}
