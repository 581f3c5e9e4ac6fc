#!/usr/bin/env node
// Does `--select fit` beat plain `--select loss` on data it was not fitted on? Judged like
// bench/select-defaults.mjs: on the testbed's non-held-out tasks, with the bank minus the target,
// each target's pick by `--select loss` and the weights `--select fit` refines from it (both on the
// first 64 train records, the defaults) are scored on up to 32 VALID records, never a test split.
// Usage: node bench/select-fit.mjs [testbed dir]  (after npm run build; LIMIT=n for fewer tasks)
import { lossCandidates, selectByLoss, WeightScorer } from "../dist/select/index.js";
import { mean, openSelectBench } from "./select-setup.mjs";

const LIMIT = Number(process.env.LIMIT ?? Number.POSITIVE_INFINITY);
// Other fit settings than the defaults, to choose them the same way: FIT_TOP=8 FIT_TRIALS=32.
const fitOptions = {
  ...(process.env.FIT_TOP ? { top: Number(process.env.FIT_TOP) } : {}),
  ...(process.env.FIT_TRIALS ? { trials: Number(process.env.FIT_TRIALS) } : {}),
};
const VALID = 32;

const bench = await openSelectBench(process.argv[2], "select-fit");
const { testbed, entries, ids, scorer } = bench;
const adapters = entries.map((e) => e.adapterPath);
const judge = new WeightScorer(scorer, adapters);
const validLoss = async (weights, valid) => mean([...(await judge.losses(weights, valid))]);

const rows = [];
const started = performance.now();
for await (const { id, train, valid, distances, mask } of bench.tasks(64, VALID)) {
  if (rows.length >= LIMIT) break;
  const candidates = lossCandidates(distances, ids, { mask });
  // No budget: every candidate on every record, then every trial (the schedule this bench measured).
  const picked = await selectByLoss({
    scorer,
    adapters,
    candidates,
    examples: train,
    budget: null,
    fit: fitOptions,
  });
  const loss = await validLoss(picked.scored[picked.chosen].weights, valid);
  const fitted = await validLoss(picked.weights, valid);
  rows.push({ id, loss, fitted, selectSeconds: picked.seconds, fitSeconds: picked.fit.seconds });
  process.stderr.write(
    `${rows.length} tasks (${id}): valid loss ${loss.toFixed(4)} → fit ${fitted.toFixed(4)}, ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
  );
}
await judge.dispose();
await bench.close();

const better = rows.filter((r) => r.fitted < r.loss - 1e-9).length;
const worse = rows.filter((r) => r.fitted > r.loss + 1e-9).length;
console.log(
  `--select fit (${JSON.stringify(fitOptions)}) vs --select loss on ${rows.length} non-held-out tasks of ${testbed} (valid loss, nats/token)`,
);
console.log(`| | --select loss | --select fit |`);
console.log(`|---|---:|---:|`);
console.log(
  `| mean valid loss | ${mean(rows.map((r) => r.loss)).toFixed(4)} | ${mean(rows.map((r) => r.fitted)).toFixed(4)} |`,
);
console.log(
  `| seconds per target | ${mean(rows.map((r) => r.selectSeconds)).toFixed(1)} | +${mean(rows.map((r) => r.fitSeconds)).toFixed(1)} |`,
);
console.log(`fit lowers the valid loss on ${better} tasks, raises it on ${worse}`);
