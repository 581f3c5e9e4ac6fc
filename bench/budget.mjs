#!/usr/bin/env node
// How many tokens should selection and fit spend? On the testbed's non-held-out tasks, with the bank
// minus the target (as a new dataset sees it), each budget's choice (`selectByLoss` with the fit, the
// one selection path generate runs) is judged on the target's VALID split, never a test split:
// greedy Rouge-L and exact match (the demo's rule: 128-token context, 16 new tokens) and the mean
// loss, beside the nearest adapter by output-side JS (no scoring) and no budget (every candidate on
// every record, then every fit trial: the default before budgets).
// Usage: node bench/budget.mjs [testbed dir]   (after npm run build)
//   BUDGETS=2500,5000,10000,20000,all (default); OUT=dir keeps one JSON per task, so a run resumes
//   and shards (SHARD=0 SHARDS=2 beside SHARD=1 SHARDS=2) share the 2 cores; the table is printed
//   from OUT.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadDataset, mixAdapters } from "../dist/index.js";
import { describeSchedule, lossCandidates, selectByLoss, WeightScorer } from "../dist/select/index.js";
import { DEFAULT_EVAL, evalRecords, majorityScore, scoreBackend } from "../dist/testbed/index.js";
import { mean, openSelectBench } from "./select-setup.mjs";

const BUDGETS = (process.env.BUDGETS ?? "2500,5000,10000,20000,all").split(",");
const SHARD = Number(process.env.SHARD ?? 0);
const SHARDS = Number(process.env.SHARDS ?? 1);
const OUT = resolve(process.env.OUT ?? join(tmpdir(), "loramix-budget-bench"));
const VALID = 32;
mkdirSync(OUT, { recursive: true });

const bench = await openSelectBench(process.argv[2], "budget");
const { testbed, entries, ids, scorer, tmp } = bench;
const backend = scorer.backend;
const adapters = entries.map((e) => e.adapterPath);
const judge = new WeightScorer(scorer, adapters);
const settings = DEFAULT_EVAL;

/** Greedy Rouge-L / exact match and the valid loss of a weight vector (cached by its bytes). */
async function judged(row, weights, valid, validExamples) {
  const key = createHash("sha256")
    .update(Buffer.from(Float64Array.from(weights).buffer))
    .digest("hex");
  row.judged ??= {};
  if (row.judged[key]) return row.judged[key];
  const dir = join(tmp, "judged");
  await mixAdapters({ adapters, weights: [...weights], out: dir });
  try {
    const b = await backend.withAdapter(dir);
    const s = await scoreBackend(b, valid, settings);
    await backend.releaseAdapter(dir);
    const loss = mean([...(await judge.losses(Float64Array.from(weights), validExamples))]);
    row.judged[key] = { rougeL: s.rougeL.mean, exactMatch: s.exactMatch.mean, loss };
    return row.judged[key];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

let k = -1;
for await (const { i, id, train, valid: validExamples, distances, mask } of bench.tasks(64, VALID)) {
  k++;
  if (k % SHARDS !== SHARD) continue;
  const file = join(OUT, `${id}.json`);
  const row = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : { id, budgets: {} };
  const dataset = await loadDataset(entries[i].dataPath, entries[i].dataOptions);
  const valid = evalRecords(dataset.splits.valid, backend.tokenizer, settings);
  const candidates = lossCandidates(distances, ids, { mask });
  if (row.nearest === undefined) {
    row.nearest = await judged(row, candidates[0].weights, valid, validExamples);
    const m = majorityScore(dataset.splits.train, dataset.splits.valid.slice(0, settings.limit));
    row.majority = { rougeL: m.rougeL.mean, exactMatch: m.exactMatch.mean };
  }
  for (const b of BUDGETS) {
    if (row.budgets[b]) continue;
    const t0 = performance.now();
    const s = await selectByLoss({
      scorer,
      adapters,
      candidates,
      examples: train,
      budget: b === "all" ? null : Number(b),
      fit: {},
    });
    const seconds = (performance.now() - t0) / 1000;
    row.budgets[b] = {
      ...(await judged(row, s.weights, valid, validExamples)),
      tokens: s.tokens,
      seconds,
      schedule: describeSchedule(s.schedule),
    };
    writeFileSync(file, `${JSON.stringify(row)}\n`);
    process.stderr.write(
      `${id} budget ${b}: Rouge-L ${row.budgets[b].rougeL.toFixed(3)}, loss ${row.budgets[b].loss.toFixed(4)}, ${s.tokens} tokens, ${seconds.toFixed(1)} s\n`,
    );
  }
  writeFileSync(file, `${JSON.stringify(row)}\n`);
}
await judge.dispose();
await bench.close();

const rows = readdirSync(OUT)
  .filter((f) => f.endsWith(".json"))
  .map((f) => JSON.parse(readFileSync(join(OUT, f), "utf8")))
  .filter((r) => BUDGETS.every((b) => r.budgets[b]));
const m = (pick, digits = 3) => mean(rows.map(pick)).toFixed(digits);
console.log(
  `selection budgets on ${rows.length} non-held-out tasks of ${testbed} (valid split, ${settings.limit} records for Rouge-L / EM, ${VALID} for the loss)`,
);
console.log("| choice | Rouge-L | exact match | valid loss | tokens | s per task |");
console.log("|---|---:|---:|---:|---:|---:|");
console.log(
  `| majority answer | ${m((r) => r.majority.rougeL)} | ${m((r) => r.majority.exactMatch)} | | | |`,
);
console.log(
  `| nearest adapter by output-side JS (no scoring) | ${m((r) => r.nearest.rougeL)} | ${m((r) => r.nearest.exactMatch)} | ${m((r) => r.nearest.loss, 4)} | 0 | |`,
);
for (const b of BUDGETS) {
  const name =
    b === "all" ? "no budget (every candidate on 64 records, 16 fit trials)" : `budget ${b} tokens`;
  console.log(
    `| ${name} | ${m((r) => r.budgets[b].rougeL)} | ${m((r) => r.budgets[b].exactMatch)} | ${m((r) => r.budgets[b].loss, 4)} | ${m((r) => r.budgets[b].tokens, 0)} | ${m((r) => r.budgets[b].seconds, 1)} |`,
  );
}
