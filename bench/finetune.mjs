#!/usr/bin/env node
// How many training steps should fine-tune the `--select fit` mix? Judged like the other select
// benches: on the testbed's 50 non-held-out tasks, with the bank minus the target, on each
// target's VALID split (up to 50 records, greedy, the demo's rule), never on a test split. For
// every step count S: the fit mix fine-tuned by S steps (mixAndFinetune, as generate does) and the
// control, S steps from the testbed's seeded initialisation on the same records (no bank), beside
// the mix alone, the task's own 200-step adapter and the majority answer.
// Usage: node bench/finetune.mjs [testbed dir]   (after npm run build)
//   STEPS=50,100 (default), LR=0.004 (default: the fine-tuning default), BUDGET=N (default:
//   generate's for the testbed's model; "all" for none)  OUT=dir keeps one JSON per task, so a run resumes and two shards
//   (SHARD=0 SHARDS=2, SHARD=1 SHARDS=2) share the 2 cores; the table is printed from OUT. A row
//   missing from a task's file (deleted, say) is computed again on the next run.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readModelInfo } from "../dist/formats/index.js";
import { mixAndFinetune } from "../dist/generate/index.js";
import { loadDataset, mixAdapters, trainLora } from "../dist/index.js";
import { defaultBudget, lossCandidates, selectByLoss } from "../dist/select/index.js";
import {
  DEFAULT_EVAL,
  DEFAULT_SEED,
  evalRecords,
  majorityScore,
  scoreBackend,
  testbedRule,
} from "../dist/testbed/index.js";
import { DEFAULT_FINETUNE_LR, finetuneRecords, TRAIN_DEFAULTS } from "../dist/train/index.js";
import { mean, openSelectBench } from "./select-setup.mjs";

const STEPS = (process.env.STEPS ?? "50,100").split(",").map(Number);
const LR = Number(process.env.LR ?? DEFAULT_FINETUNE_LR);

const SHARD = Number(process.env.SHARD ?? 0);
const SHARDS = Number(process.env.SHARDS ?? 1);
const OUT = resolve(process.env.OUT ?? join(tmpdir(), `loramix-finetune-bench-lr${LR}`));
const MODEL = resolve(
  process.env.LORAMIX_SHARED ?? resolve(import.meta.dirname, "../../shared"),
  "models/tinystories-656k",
);
const BUDGET =
  process.env.BUDGET === undefined
    ? defaultBudget((await readModelInfo(MODEL)).dims)
    : process.env.BUDGET === "all"
      ? null
      : Number(process.env.BUDGET);
mkdirSync(OUT, { recursive: true });

const bench = await openSelectBench(process.argv[2], "finetune");
const { testbed, entries, ids, scorer, tmp } = bench;
const backend = scorer.backend;
const adapters = entries.map((e) => e.adapterPath);
const settings = DEFAULT_EVAL;
const rule = testbedRule(settings);
const scoreDir = async (dir, records) => {
  const b = await backend.withAdapter(dir);
  try {
    const s = await scoreBackend(b, records, settings);
    return { rougeL: s.rougeL.mean, exactMatch: s.exactMatch.mean };
  } finally {
    await backend.releaseAdapter(dir);
  }
};

let k = -1;
for await (const { i, id, train, distances, mask } of bench.tasks(64, 8)) {
  k++;
  if (k % SHARDS !== SHARD) continue;
  const file = join(OUT, `${id}.json`);
  const row = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : { id, steps: {} };
  const dataset = await loadDataset(entries[i].dataPath, entries[i].dataOptions);
  const valid = evalRecords(dataset.splits.valid, backend.tokenizer, settings);
  if (row.fit === undefined) {
    const picked = await selectByLoss({
      scorer,
      adapters,
      candidates: lossCandidates(distances, ids, { mask }),
      examples: train,
      budget: BUDGET,
      fit: {},
    });
    row.weights = [...picked.weights];
    const mixDir = join(tmp, "mix");
    await mixAdapters({ adapters, weights: row.weights, out: mixDir });
    row.fit = await scoreDir(mixDir, valid);
    await rm(mixDir, { recursive: true, force: true });
    row.own = await scoreDir(adapters[i], valid);
    const majority = majorityScore(dataset.splits.train, dataset.splits.valid.slice(0, settings.limit));
    row.majority = { rougeL: majority.rougeL.mean, exactMatch: majority.exactMatch.mean };
  }
  for (const steps of STEPS) {
    row.steps[steps] ??= {};
    const done = row.steps[steps];
    if (done.finetuned && done.scratch) continue;
    const records = finetuneRecords(dataset.splits.train, steps);
    if (!done.finetuned) {
      const dir = join(tmp, "finetuned");
      const t0 = performance.now();
      const { finetune } = await mixAndFinetune(
        (mixDir) => mixAdapters({ adapters, weights: row.weights, out: mixDir }),
        { model: MODEL, records, steps, lr: LR, rule, out: dir },
      );
      const seconds = (performance.now() - t0) / 1000;
      done.finetuned = { ...(await scoreDir(dir, valid)), seconds, finalLoss: finetune.finalLoss };
      await rm(dir, { recursive: true, force: true });
    }
    if (!done.scratch) {
      // The seeded initialisation of A; the batches in the fine-tuning's order.
      const dir = join(tmp, "scratch");
      const t0 = performance.now();
      await trainLora({
        model: MODEL,
        records,
        out: dir,
        steps,
        lr: LR,
        seed: DEFAULT_SEED,
        shuffleSeed: TRAIN_DEFAULTS.seed,
        rule,
      });
      const seconds = (performance.now() - t0) / 1000;
      done.scratch = { ...(await scoreDir(dir, valid)), seconds };
      await rm(dir, { recursive: true, force: true });
    }
    writeFileSync(file, `${JSON.stringify(row)}\n`);
    process.stderr.write(
      `${id} ${steps} steps: finetuned ${done.finetuned.rougeL.toFixed(3)}, scratch ${done.scratch.rougeL.toFixed(3)}, own ${row.own.rougeL.toFixed(3)}, majority ${row.majority.rougeL.toFixed(3)}\n`,
    );
  }
  writeFileSync(file, `${JSON.stringify(row)}\n`);
}
await bench.close();

// The table, over every task in OUT that has all step counts.
const rows = readdirSync(OUT)
  .filter((f) => f.endsWith(".json"))
  .map((f) => JSON.parse(readFileSync(join(OUT, f), "utf8")))
  .filter((r) => STEPS.every((s) => r.steps[s]?.finetuned && r.steps[s]?.scratch));
const m = (pick, digits = 3) => mean(rows.map(pick)).toFixed(digits);
console.log(
  `fine-tuning steps on ${rows.length} non-held-out tasks of ${testbed} (valid split, up to ${settings.limit} records each)`,
);
console.log("| adapter | Rouge-L | exact match | s per task |");
console.log("|---|---:|---:|---:|");
console.log(`| majority answer | ${m((r) => r.majority.rougeL)} | ${m((r) => r.majority.exactMatch)} | |`);
console.log(
  `| own adapter (200 steps, no bank) | ${m((r) => r.own.rougeL)} | ${m((r) => r.own.exactMatch)} | |`,
);
console.log(
  `| --select fit mix, not fine-tuned | ${m((r) => r.fit.rougeL)} | ${m((r) => r.fit.exactMatch)} | |`,
);
for (const s of STEPS) {
  for (const kind of ["finetuned", "scratch"]) {
    const title =
      kind === "finetuned" ? `fit mix + ${s} fine-tuning steps` : `${s} steps from the seeded init (no bank)`;
    console.log(
      `| ${title} | ${m((r) => r.steps[s][kind].rougeL)} | ${m((r) => r.steps[s][kind].exactMatch)} | ${m((r) => r.steps[s][kind].seconds, 1)} |`,
    );
  }
}
for (const s of STEPS) {
  const wins = (b) => rows.filter((r) => r.steps[s].finetuned.rougeL > b(r) + 1e-9).length;
  const losses = (b) => rows.filter((r) => r.steps[s].finetuned.rougeL < b(r) - 1e-9).length;
  console.log(
    `${s} steps, finetuned vs own adapter: higher on ${wins((r) => r.own.rougeL)}, lower on ${losses((r) => r.own.rougeL)}; vs majority: higher on ${wins((r) => r.majority.rougeL)}, lower on ${losses((r) => r.majority.rougeL)}; vs the same steps without the bank: higher on ${wins((r) => r.steps[s].scratch.rougeL)}, lower on ${losses((r) => r.steps[s].scratch.rougeL)}`,
  );
}
