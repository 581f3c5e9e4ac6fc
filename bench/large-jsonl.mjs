#!/usr/bin/env node
// loramix on a large JSONL (issue 13: memory must stay bounded): writes a file of LARGE_JSONL_MB
// megabytes (default 2048) of real Super-NI records, then runs the commands that read a user's
// dataset on it — `profile`, `bank add` + `bank index`, `generate` on a small synthetic bank and
// `eval --limit` with the tiny model — each in its own process, and prints its time and peak
// resident memory. `npm run build` first.
import { spawnSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const shared = resolve(process.env.LORAMIX_SHARED ?? join(repo, "../shared"));
const sni = join(shared, "data/sni");
const cli = join(repo, "dist/cli/main.js");
const rssHook = join(repo, "bench/rss-hook.mjs");
const targetBytes = Number(process.env.LARGE_JSONL_MB ?? 2048) * 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), "loramix-large-jsonl-"));
const file = join(work, "large.jsonl");

function loramix(label, args) {
  const rssFile = join(work, ".rss");
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ["--import", rssHook, cli, ...args], {
    encoding: "utf8",
    env: { ...process.env, LORAMIX_RSS_FILE: rssFile },
    maxBuffer: 1 << 24,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`loramix ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
  const peakMB = Number(readFileSync(rssFile, "utf8")) / 1024;
  return { label, seconds, peakMB };
}

try {
  const files = readdirSync(sni).sort();
  const lines = [];
  for (const f of files.slice(0, 40)) {
    const task = JSON.parse(readFileSync(join(sni, f), "utf8").replace(/\bNaN\b/g, "null"));
    for (const r of task.Instances) lines.push(JSON.stringify({ input: r.input, output: r.output[0] }));
  }
  const block = Buffer.from(`${lines.join("\n")}\n`);
  const fd = openSync(file, "w");
  let written = 0;
  while (written < targetBytes) written += writeSync(fd, block);
  closeSync(fd);
  const sizeMB = statSync(file).size / 1024 / 1024;

  const tasks = join(work, "tasks");
  mkdirSync(tasks);
  for (const f of files.slice(0, 20)) symlinkSync(join(sni, f), join(tasks, f));
  const bank = join(work, "bank");
  for (const args of [
    ["synth-bank", join(work, "synth"), "--entries", "20", "--data", tasks, "--layout", "tiny"],
    ["bank", "init", bank, "--tokenizer", "mistral"],
    ["bank", "import-sni", bank, "--tasks", tasks, "--adapters", join(work, "synth/adapters")],
    ["bank", "index", bank],
  ])
    loramix("setup", args);

  const rows = [
    loramix("profile", ["profile", file, "--out", join(work, "profile.json")]),
    loramix("bank add (dataset only)", ["bank", "add", bank, "--id", "large", "--data", file]),
    loramix("bank index (profiles it)", ["bank", "index", bank]),
    loramix("generate (paper's method)", [
      ...["generate", bank, "--data", file, "--select", "method", "--metric", "js"],
      ...["--method", "normalized", "--out", join(work, "adapter")],
    ]),
    loramix("eval --limit 20 (tiny model)", [
      ...["eval", "--model", join(shared, "models/tinystories-656k"), "--data", file],
      ...["--limit", "20", "--max-new-tokens", "8", "--out", join(work, "eval")],
    ]),
  ];
  const records = lines.length * Math.round(written / block.length);
  console.log(`JSONL of ${sizeMB.toFixed(0)} MB, ${records.toLocaleString("en-US")} records:`);
  console.log("| command | seconds | peak RSS (MB) | × the file |\n|---|---:|---:|---:|");
  for (const r of rows)
    console.log(
      `| ${r.label} | ${r.seconds.toFixed(1)} | ${r.peakMB.toFixed(0)} | ${(r.peakMB / sizeMB).toFixed(2)} |`,
    );
} finally {
  rmSync(work, { recursive: true, force: true });
}
