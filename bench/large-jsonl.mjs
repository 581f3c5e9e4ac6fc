#!/usr/bin/env node
// The dataset reader on a large JSONL (issue: memory must stay bounded): writes a file of
// LARGE_JSONL_MB megabytes (default 2048) of real Super-NI records, reads it with loadDataset in a
// separate process and prints its time and peak resident memory. `npm run build` first.
import { spawnSync } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const sni = join(repo, "../shared/data/sni");
const targetBytes = Number(process.env.LARGE_JSONL_MB ?? 2048) * 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), "loramix-large-jsonl-"));
const file = join(work, "large.jsonl");
try {
  const lines = [];
  for (const f of readdirSync(sni).sort().slice(0, 40)) {
    const task = JSON.parse(readFileSync(join(sni, f), "utf8").replace(/\bNaN\b/g, "null"));
    for (const r of task.Instances) lines.push(JSON.stringify({ input: r.input, output: r.output[0] }));
  }
  const block = Buffer.from(`${lines.join("\n")}\n`);
  const fd = openSync(file, "w");
  let written = 0;
  while (written < targetBytes) written += writeSync(fd, block);
  closeSync(fd);
  const reader = `import { loadDataset } from ${JSON.stringify(join(repo, "dist/datasets/load.js"))};
const t0 = performance.now();
const d = await loadDataset(${JSON.stringify(file)});
console.log(JSON.stringify({ records: d.records.length, seconds: (performance.now() - t0) / 1000, peakMB: process.resourceUsage().maxRSS / 1024 }));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", reader], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  const result = JSON.parse(r.stdout);
  const sizeMB = statSync(file).size / 1024 / 1024;
  console.log(
    `JSONL of ${sizeMB.toFixed(0)} MB, ${result.records} records: read in ${result.seconds.toFixed(1)} s, peak RSS ${result.peakMB.toFixed(0)} MB (${(result.peakMB / sizeMB).toFixed(2)}× the file)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
