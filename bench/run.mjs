#!/usr/bin/env node
// `npm run bench`: runs the CLI (built into dist/) on real Super-NI data and a synthetic Mistral-shaped
// bank, times every step, reads each step's peak memory, and writes bench/RESULTS.md.
// Every step is a separate process so peak RSS belongs to that step alone.
// Options (env): BENCH_ENTRIES (default 414), BENCH_DIR (default: a temp dir, removed at the end),
// BENCH_ONLY=foundation|method to run one part; BENCH_ONLY=gram|testbed for the steps run only on request.
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { cpus, freemem, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const shared = resolve(repo, "../shared");
const sni = join(shared, "data/sni");
const cli = join(repo, "dist/cli/main.js");
const rssHook = join(repo, "bench/rss-hook.mjs");
const entries = Number(process.env.BENCH_ENTRIES ?? 414);
const only = process.env.BENCH_ONLY;
const work = process.env.BENCH_DIR ?? mkdtempSync(join(tmpdir(), "loramix-bench-"));
const keep = Boolean(process.env.BENCH_DIR);
mkdirSync(work, { recursive: true });

const rows = [];
const notes = [];

/** Runs `loramix ...args`, returns {seconds, peakMB, stdout, stderr}; throws on failure. */
function loramix(label, args, { record = true } = {}) {
  const rssFile = join(work, `.rss-${process.pid}-${rows.length}`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ["--import", rssHook, cli, ...args], {
    encoding: "utf8",
    env: { ...process.env, LORAMIX_RSS_FILE: rssFile },
    maxBuffer: 1 << 28,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) {
    throw new Error(`loramix ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
  }
  let peakMB = Number.NaN;
  try {
    peakMB = Number(readFileSync(rssFile, "utf8")) / 1024;
    rmSync(rssFile);
  } catch {}
  const result = {
    label,
    command: `loramix ${args.join(" ")}`,
    seconds,
    peakMB,
    stdout: r.stdout,
    stderr: r.stderr,
  };
  if (record) rows.push(result);
  process.stderr.write(`${label}: ${seconds.toFixed(1)} s, peak ${peakMB.toFixed(0)} MB\n`);
  return result;
}

/** Commands as a reader can rerun them: the temp dir as $BENCH, the shared data as ../shared. */
/** `loramix generate` with the paper's best configuration (normalized JS), optionally top-k. */
function generateArgs(bank, data, out, topK) {
  const args = ["generate", bank, "--data", data, "--metric", "js", "--method", "normalized", "--out", out];
  return topK ? [...args, "--top-k", String(topK)] : args;
}

function rel(command) {
  return command.replaceAll(work, "$BENCH").replaceAll(shared, "../shared").replaceAll(repo, ".");
}

/** A folder of links to the first n task files, so a bank can be built over a subset. */
function taskSubset(name, files) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const f of files) symlinkSync(join(sni, f), join(dir, f));
  return dir;
}

function dirBytes(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      const p = join(e.parentPath ?? e.path, e.name);
      total += Number(spawnSync("stat", ["-c", "%s", p], { encoding: "utf8" }).stdout);
    }
  }
  return total;
}

const taskFiles = readdirSync(sni)
  .filter((f) => f.endsWith(".json"))
  .sort();

// ---- Foundation: import + index all Super-NI tasks (dataset-only), Mistral tokenizer.
if (!only || only === "foundation") {
  const bank = join(work, "sni-bank");
  loramix("bank init", ["bank", "init", bank, "--tokenizer", "mistral"], { record: false });
  loramix(`bank import-sni (${taskFiles.length} tasks, dataset-only)`, [
    "bank",
    "import-sni",
    bank,
    "--tasks",
    sni,
  ]);
  const index = loramix("bank index (Mistral tokenizer)", ["bank", "index", bank]);
  const ls = JSON.parse(loramix("bank ls --json", ["bank", "ls", bank, "--json"], { record: false }).stdout);
  const tokens = ls.reduce((s, e) => s + (e.tokens ?? 0), 0);
  index.detail = `${(tokens / 1e6).toFixed(1)}M tokens, ${(tokens / index.seconds / 1e3).toFixed(0)}k tokens/s (wall, process start included)`;
}

// ---- Method: synthetic Mistral-shaped bank over the first `entries` tasks.
if (!only || only === "method") {
  const heldOut = taskFiles[taskFiles.length - 1];
  const bankTasks = taskFiles.slice(0, Math.min(entries, taskFiles.length - 1));
  const tasks = taskSubset("tasks", bankTasks);
  const synth = join(work, "synth");
  const gen = loramix(`synth-bank (${bankTasks.length} Mistral-shaped adapters)`, [
    "synth-bank",
    synth,
    "--entries",
    String(bankTasks.length),
    "--data",
    tasks,
    "--layout",
    "mistral-7b",
  ]);
  const bytes = dirBytes(join(synth, "adapters"));
  gen.detail = `${(bytes / 1e9).toFixed(1)} GB, ${(bytes / 1e6 / gen.seconds).toFixed(0)} MB/s`;

  const bank = join(work, "synth-bank");
  loramix("bank init", ["bank", "init", bank, "--tokenizer", "mistral"], { record: false });
  loramix("bank import-sni (with adapters)", [
    "bank",
    "import-sni",
    bank,
    "--tasks",
    tasks,
    "--adapters",
    join(synth, "adapters"),
  ]);
  loramix("bank index", ["bank", "index", bank]);
  loramix("distances, all four metrics (cold)", [
    "distances",
    bank,
    "--metric",
    "all",
    "--out",
    join(work, "d.json"),
  ]);
  const target = join(sni, heldOut);
  const topk = loramix(
    "generate --top-k 32 (new dataset, end to end)",
    generateArgs(bank, target, join(work, "gen-top32"), 32),
  );
  topk.detail = "profile + distances + weights + mix + write";
  const dense = loramix(
    `generate, dense (all ${bankTasks.length} weights)`,
    generateArgs(bank, target, join(work, "gen-dense")),
  );
  dense.detail = `reads ${(bytes / 1e9).toFixed(1)} GB: ${(bytes / 1e6 / dense.seconds).toFixed(0)} MB/s`;
  // The disk's own sequential rate, on the same files (page cache state as for the dense run).
  const t0 = process.hrtime.bigint();
  spawnSync("sh", ["-c", `cat ${join(synth, "adapters")}/*/adapter_model.safetensors > /dev/null`]);
  const catSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push({
    label: "reference: `cat` of the same adapter files",
    command: "cat $BENCH/synth/adapters/*/adapter_model.safetensors > /dev/null",
    seconds: catSeconds,
    peakMB: Number.NaN,
    detail: `${(bytes / 1e6 / catSeconds).toFixed(0)} MB/s`,
  });
  trainMlpRows(bank);

  // Peak memory of generate must not depend on the bank size: the same run on a 100-entry bank.
  const small = join(work, "synth-bank-100");
  loramix("bank init", ["bank", "init", small, "--tokenizer", "mistral"], { record: false });
  loramix(
    "bank import-sni (100)",
    [
      "bank",
      "import-sni",
      small,
      "--tasks",
      taskSubset("tasks100", bankTasks.slice(0, 100)),
      "--adapters",
      join(synth, "adapters"),
    ],
    { record: false },
  );
  loramix("bank index (100)", ["bank", "index", small], { record: false });
  loramix("generate --top-k 32 on a 100-entry bank", generateArgs(small, target, join(work, "gen-100"), 32));
  notes.push(`Held-out target dataset for generate: ${heldOut} (not in the bank).`);
}

/** train-mlp twice: cold (Gram matrix computed, its time parsed from the output), then with the Gram cached. */
function trainMlpRows(bank) {
  const cold = loramix("train-mlp (Gram matrix computed, then the MLP)", [
    "train-mlp",
    bank,
    "--metric",
    "js",
  ]);
  const gram = /Gram matrix of (\d+) adapters \((\d+) parameters each\) in ([\d.]+) s/.exec(cold.stderr);
  if (gram) cold.detail = `Gram matrix of ${gram[1]} × ${gram[2]} parameters: ${gram[3]} s`;
  const warm = loramix("train-mlp again (Gram cached: the MLP alone)", ["train-mlp", bank, "--metric", "js"]);
  const loss = /final train loss (\S+).*\n.*?validation loss (\S+)/s.exec(warm.stderr);
  if (loss) warm.detail = `H=64, 40 epochs; train loss ${loss[1]}, validation ${loss[2]}`;
}

// Only the Gram matrix and the MLP, on a bank left by an earlier run with BENCH_DIR (its cache cleared first).
if (only === "gram") {
  const bank = join(work, "synth-bank");
  const { Bank } = await import(join(repo, "dist/index.js"));
  const b = await Bank.open(bank);
  b.deleteCache("gram");
  b.deleteCache("mlp");
  b.close();
  trainMlpRows(bank);
}

// The shipped testbed rebuilt from scratch (every adapter trained, ~45 min on 2 cores) and the
// default demo on it. Training is seeded, so the rebuilt adapters must equal the shipped ones.
if (only === "testbed") {
  const dir = join(work, "testbed");
  const jobs = String(cpus().length);
  const build = loramix(`testbed build from scratch (--jobs ${jobs})`, [
    "testbed",
    "build",
    "--out",
    dir,
    "--jobs",
    jobs,
  ]);
  const log = JSON.parse(readFileSync(join(dir, "build.json"), "utf8"));
  const s = log.lastRun.seconds;
  const tasks = Object.keys(log.trainSeconds);
  build.detail = `${tasks.length} adapters; train ${s.train.toFixed(0)} s, bank ${s.bank.toFixed(0)} s, reference scores ${s.references.toFixed(0)} s`;
  const bytes = (root, t) => readFileSync(join(root, "adapters", t, "adapter_model.safetensors"));
  const same = tasks.filter((t) => bytes(dir, t).equals(bytes(join(repo, "testbed"), t))).length;
  notes.push(`Rebuilt adapters byte-identical to the shipped testbed/: ${same} of ${tasks.length}.`);
  const demo = loramix("demo (11 held-out tasks × 16 variants × 30 test records)", [
    "demo",
    "--testbed",
    dir,
    "--out",
    join(work, "demo"),
  ]);
  const verdicts = demo.stderr.split("\n").filter((l) => /^(Rouge-L|exact match): the best/.test(l));
  notes.push("Demo verdicts:", "", ...verdicts.map((v) => `- ${v}`));
}

const cpu = cpus();
const date = new Date().toISOString().slice(0, 10);
const table = rows
  .map(
    (r) =>
      `| ${r.label} | ${r.seconds.toFixed(1)} | ${Number.isNaN(r.peakMB) ? "–" : r.peakMB.toFixed(0)} | ${r.detail ?? ""} | \`${rel(r.command)}\` |`,
  )
  .join("\n");
const md = `# Benchmark results

Machine: ${cpu.length} × ${cpu[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM
(${(freemem() / 2 ** 30).toFixed(0)} GiB free at the end), Node ${process.version}, ${process.platform}.
Date: ${date}. Command: \`npm run bench\` (BENCH_ENTRIES=${entries}${only ? `, BENCH_ONLY=${only}` : ""}).
Each row is one \`loramix\` process: wall seconds and its peak resident memory (maxRSS, worker threads included).

| step | seconds | peak MB | figures | command |
|---|---:|---:|---|---|
${table}

${notes.join("\n")}
`;
const out = join(repo, "bench/RESULTS.md");
let previous = "";
try {
  previous = readFileSync(out, "utf8");
} catch {}
// Newest run first; earlier runs are kept below as history.
writeFileSync(out, previous ? `${md}\n---\n\n${previous.replace(/^# Benchmark results\n\n/, "")}` : md);
process.stderr.write(`wrote ${out}\n`);
if (!keep) rmSync(work, { recursive: true, force: true });
