#!/usr/bin/env node
// The time and memory of loramix's default on the model people run: a random-weight GGUF of
// Mistral-7B's shape (`loramix synth-model`: the compute of the real model, outputs that are
// noise) with a Lots-of-LoRAs-shaped synthetic bank (502 entries, r 16, q/k/v). Measures:
//   1. llama.cpp's raw prompt throughput on that file (node-llama-cpp, one 512-token batch of
//      Super-NI text, 1 thread and all cores): the limit;
//   2. loramix's scoring throughput on the same tokens (LlamaScorer, base model);
//   3. scoring with the shared prompt prefix on a Super-NI task: the tokens a full evaluation
//      would process, per second;
//   4. the default `generate --model` end to end, with its time split and peak resident memory.
// Usage: node bench/big-model.mjs [DIR]   (after npm run build; DIR keeps the fixture between runs,
//   default $TMPDIR/loramix-big; SHAPE=tinyllama-1b for a quick run; STEPS=1,2,3,4 to choose)
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from "node:fs";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { loadDataset } from "../dist/datasets/index.js";
import { LlamaBackend } from "../dist/eval/index.js";
import { LlamaScorer, scoreExamples, scoringTokens } from "../dist/select/index.js";

const repo = resolve(import.meta.dirname, "..");
const shared = resolve(repo, "../shared");
const sni = join(shared, "data/sni");
const cli = join(repo, "dist/cli/main.js");
const dir = resolve(process.argv[2] ?? join(tmpdir(), "loramix-big"));
const shape = process.env.SHAPE ?? "mistral-7b";
const layout = shape === "tiny" ? "tiny-mistral" : shape;
const entries = Number(process.env.ENTRIES ?? 502);
const steps = new Set((process.env.STEPS ?? "1,2,3,4").split(",").map(Number));
const target = join(sni, process.env.TASK ?? "task1605_ethos_text_classification.json");
mkdirSync(dir, { recursive: true });
const model = join(dir, `${shape}.gguf`);
const bank = join(dir, `bank-${layout}-${entries}`);
const log = (line) => process.stderr.write(`${line}\n`);
const results = [];

/** `loramix ...args` under /usr/bin/time: wall seconds, peak resident memory, output. */
function loramix(args) {
  const r = spawnSync("/usr/bin/time", ["-f", "%e %M", process.execPath, cli, ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const [seconds, kb] = r.stderr.trim().split("\n").at(-1).split(" ").map(Number);
  if (r.status !== 0) throw new Error(`loramix ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
  return { seconds, peakMB: kb / 1024, stdout: r.stdout, stderr: r.stderr };
}

// The fixture: the model, then the bank (the 414 Super-NI tasks, then as many again under new ids).
if (!existsSync(model)) {
  log(`writing ${model}`);
  loramix([
    "synth-model",
    "--out",
    model,
    "--shape",
    shape,
    "--vocab",
    join(shared, "tokenizers/mistral/tokenizer.model"),
  ]);
}
if (!existsSync(join(bank, "bank.sqlite"))) {
  const tasks = join(dir, `tasks-${entries}`);
  if (!existsSync(tasks)) {
    mkdirSync(tasks);
    const files = readdirSync(sni)
      .filter((f) => f.endsWith(".json"))
      .sort();
    for (let i = 0; i < entries; i++) {
      const f = files[i % files.length];
      const copy = Math.floor(i / files.length);
      symlinkSync(join(sni, f), join(tasks, copy === 0 ? f : f.replace(/\.json$/, `_c${copy}.json`)));
    }
  }
  const adapters = join(dir, `synth-${layout}-${entries}`);
  if (!existsSync(join(adapters, "SYNTHETIC.md"))) {
    log(`writing ${entries} synthetic adapters (${layout})`);
    loramix(["synth-bank", adapters, "--entries", String(entries), "--data", tasks, "--layout", layout]);
  }
  log("bank init, import, index");
  const base = {
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.2",
    "tinyllama-1b": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
  };
  loramix([
    "bank",
    "init",
    bank,
    "--tokenizer",
    "mistral",
    "--base-model",
    base[shape] ?? "loramix/tiny-synthetic",
  ]);
  loramix(["bank", "import-sni", bank, "--tasks", tasks, "--adapters", join(adapters, "adapters")]);
  loramix(["bank", "index", bank]);
}

const threads = availableParallelism();
const records = (await loadDataset(target)).splits.train;

if (steps.has(1) || steps.has(2) || steps.has(3)) {
  const backend = await LlamaBackend.load({ model, contextSize: 1024, threads });
  const scorer = LlamaScorer.over(backend);
  // One 512-token sequence of real text: the same tokens for llama.cpp alone and for the scorer.
  const text = records.map((r) => r.input).join("\n");
  const ids = backend.tokenizer.encode(text, { bos: true }).slice(0, 512);
  const example = { ids: Int32Array.from(ids), outputStart: 500 };
  if (steps.has(1)) {
    for (const n of [1, threads]) {
      const context = await backend.model.createContext({ contextSize: 1024, threads: n, batchSize: 512 });
      const sequence = context.getSequence();
      await sequence.evaluateWithoutGeneratingNewTokens(ids.slice(0, 64)); // warm the weights' pages
      await sequence.clearHistory();
      const t0 = performance.now();
      await sequence.evaluateWithoutGeneratingNewTokens(ids.slice(0, 511));
      const s = (performance.now() - t0) / 1000;
      results.push(
        `llama.cpp alone, ${n} thread${n > 1 ? "s" : ""}: 511 tokens in ${s.toFixed(1)} s, ${(511 / s).toFixed(1)} tokens/s`,
      );
      log(results.at(-1));
      await context.dispose();
    }
  }
  if (steps.has(2)) {
    const t0 = performance.now();
    await scorer.losses(null, [example]);
    const s = (performance.now() - t0) / 1000;
    results.push(
      `loramix scoring, ${threads} threads, the same tokens: ${(511 / s).toFixed(1)} tokens/s (${s.toFixed(1)} s, context created and freed included)`,
    );
    log(results.at(-1));
  }
  if (steps.has(3)) {
    const examples = scoreExamples(records, scorer, { context: 1024, answerTokens: 128 }, 8);
    const full = scoringTokens(examples, false);
    const evaluated = scoringTokens(examples, true);
    const t0 = performance.now();
    await scorer.losses(null, examples);
    const s = (performance.now() - t0) / 1000;
    results.push(
      `prefix reuse, 8 records of ${target.split("/").at(-1)} (context 1024): ${evaluated} of ${full} tokens evaluated in ${s.toFixed(1)} s: ${(full / s).toFixed(1)} tokens/s effective`,
    );
    log(results.at(-1));
  }
  await backend.dispose();
}

if (steps.has(4)) {
  const out = join(dir, `generated-${shape}`);
  const r = loramix(["generate", bank, "--data", target, "--model", model, "--out", out]);
  const time = r.stdout.split("\n").filter((l) => /^(schedule|time|target):/.test(l));
  results.push(
    `default generate end to end: ${r.seconds.toFixed(0)} s, peak ${(r.peakMB / 1024).toFixed(2)} GB (model file ${(statSync(model).size / 1e9).toFixed(2)} GB)`,
  );
  results.push(...time);
  log(results.slice(-1 - time.length).join("\n"));
}

console.log(`# ${shape}-shaped GGUF (random weights), ${entries}-entry synthetic bank`);
console.log(
  `Machine: ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}`,
);
for (const line of results) console.log(`- ${line}`);
