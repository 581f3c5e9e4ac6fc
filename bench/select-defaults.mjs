#!/usr/bin/env node
import { mkdtempSync } from "node:fs";
// How many candidates (N nearest by output-side JS) and train examples (K) `--select loss` needs.
// Chosen on the testbed's 50 non-held-out tasks, with the bank minus the target (as a new dataset
// sees it), and judged on each target's VALID split, never on a test split: for every N and K the
// candidate with the lowest mean loss on the first K train examples (among the N nearest + the
// mixtures) is taken, and its mean loss on 64 valid examples is reported against the best
// candidate's (the regret). Usage: node bench/select-defaults.mjs [testbed dir]  (after npm run build)
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bankDistanceMatrices } from "../dist/distances/index.js";
import { Bank, hfToGguf, loadDataset, mixAdapters } from "../dist/index.js";
import { LlamaScorer, lossCandidates, scoreExamples } from "../dist/select/index.js";

const testbed = resolve(process.argv[2] ?? "testbed");
const model = resolve(
  process.env.LORAMIX_SHARED ?? resolve(import.meta.dirname, "../../shared"),
  "models/tinystories-656k",
);
const NS = [1, 2, 4, 8, 12];
const KS = [8, 16, 32, 64];
const MAX_N = Math.max(...NS);
const MAX_K = Math.max(...KS);
const VALID = 32;

const selection = JSON.parse(await readFile(join(testbed, "selection.json"), "utf8"));
const heldOut = new Set(selection.heldOut);
const bank = await Bank.open(testbed);
const entries = bank.entries().filter((e) => e.adapterPath !== null);
const ids = entries.map((e) => e.id);
const [d] = await bankDistanceMatrices(bank, ["js"], { side: "output" });
const tmp = mkdtempSync(join(tmpdir(), "loramix-select-defaults-"));
const gguf = join(tmp, "model.gguf");
await hfToGguf({ modelDir: model, out: gguf });
const scorer = await LlamaScorer.open({ model: gguf, tokenizer: model, contextSize: 128 });
const tok = scorer.backend.tokenizer;
const eosId = scorer.backend.eosId ?? 2;
const mean = (a, k = a.length) => a.slice(0, k).reduce((s, v) => s + v, 0) / Math.min(k, a.length);

const regret = new Map(); // "N,K" -> [regret per task]
const started = performance.now();
let tasks = 0;
for (const [i, id] of ids.entries()) {
  if (heldOut.has(id)) continue;
  const entry = entries[i];
  const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
  const train = scoreExamples(dataset.splits.train, tok, {
    count: MAX_K,
    context: 128,
    answerTokens: 16,
    eosId,
  });
  const valid = scoreExamples(dataset.splits.valid, tok, {
    count: VALID,
    context: 128,
    answerTokens: 16,
    eosId,
  });
  if (valid.length < 8) continue;
  const row = d.values.subarray(d.ids.indexOf(id) * d.ids.length, (d.ids.indexOf(id) + 1) * d.ids.length);
  const ordered = ids.map((x) => row[d.ids.indexOf(x)]);
  const mask = ids.map((_, j) => j === i);
  const cands = lossCandidates(Float64Array.from(ordered), ids, { nearest: MAX_N, mask });
  const scored = [];
  for (const [k, c] of cands.entries()) {
    let dir;
    if (c.kind === "single") dir = entries[c.weights.indexOf(1)].adapterPath;
    else {
      dir = join(tmp, `mix-${k}`);
      await mixAdapters({ adapters: entries.map((e) => e.adapterPath), weights: [...c.weights], out: dir });
    }
    const t = [...(await scorer.losses(dir, train))];
    const v = mean([...(await scorer.losses(dir, valid))]);
    if (c.kind !== "single") await rm(dir, { recursive: true, force: true });
    scored.push({ c, rank: c.kind === "single" ? Number(c.label.split(" ")[1].replace(":", "")) : 0, t, v });
  }
  const best = Math.min(...scored.map((s) => s.v));
  for (const N of NS) {
    for (const K of KS) {
      const pool = scored.filter((s) => s.rank <= N);
      let pick = pool[0];
      for (const s of pool) if (mean(s.t, K) < mean(pick.t, K)) pick = s;
      const key = `${N},${K}`;
      if (!regret.has(key)) regret.set(key, []);
      regret.get(key).push(pick.v - best);
    }
  }
  tasks++;
  process.stderr.write(`${tasks} tasks (${id}), ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}
await scorer.dispose();
bank.close();
await rm(tmp, { recursive: true, force: true });

console.log(
  `select-loss defaults on ${tasks} non-held-out tasks of ${testbed}: mean valid-loss regret (nats/token) of the pick vs the best candidate`,
);
console.log(`N \\ K  ${KS.map((k) => String(k).padStart(7)).join("")}`);
for (const N of NS) {
  console.log(
    `${String(N).padStart(5)}  ${KS.map((K) =>
      mean(regret.get(`${N},${K}`))
        .toFixed(4)
        .padStart(7),
    ).join("")}`,
  );
}
