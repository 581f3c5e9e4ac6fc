#!/usr/bin/env node
// How many candidates (N nearest by output-side JS) and train examples (K) `--select loss` needs.
// Chosen on the testbed's 50 non-held-out tasks, with the bank minus the target (as a new dataset
// sees it), and judged on each target's VALID split, never on a test split: for every N and K the
// candidate with the lowest mean loss on the first K train examples (among the N nearest + the
// mixtures) is taken, and its mean loss on 32 valid examples is reported against the best
// candidate's (the regret). Usage: node bench/select-defaults.mjs [testbed dir]  (after npm run build)
import { lossCandidates, WeightScorer } from "../dist/select/index.js";
import { openSelectBench } from "./select-setup.mjs";

const NS = [1, 2, 4, 8, 12];
const KS = [8, 16, 32, 64];
const MAX_N = Math.max(...NS);
const MAX_K = Math.max(...KS);
const VALID = 32;

const bench = await openSelectBench(process.argv[2], "select-defaults");
const { testbed, entries, ids, scorer } = bench;
// Every candidate scored once on MAX_K train and the valid examples; each (N, K) pick is then
// the lowest mean over its first K, as `selectByLoss` would pick with those settings.
const weigher = new WeightScorer(
  scorer,
  entries.map((e) => e.adapterPath),
);
const mean = (a, k = a.length) => a.slice(0, k).reduce((s, v) => s + v, 0) / Math.min(k, a.length);

const regret = new Map(); // "N,K" -> [regret per task]
const started = performance.now();
let tasks = 0;
for await (const { id, train, valid, distances, mask } of bench.tasks(MAX_K, VALID)) {
  const cands = lossCandidates(distances, ids, { nearest: MAX_N, mask });
  const scored = [];
  for (const c of cands) {
    const t = [...(await weigher.losses(c.weights, train))];
    const v = mean([...(await weigher.losses(c.weights, valid))]);
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
await weigher.dispose();
await bench.close();

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
