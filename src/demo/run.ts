import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { indexBank } from "../bank/indexBank.js";
import { Bank, loramixVersion } from "../bank/store.js";
import { loadDataset } from "../datasets/load.js";
import { type BankDistances, bankDistanceMatrices } from "../distances/matrix.js";
import type { Metric } from "../distances/metric.js";
import { LoramixError, throwIfAborted, usageError } from "../errors.js";
import type { LlamaBackend } from "../eval/llamaBackend.js";
import { ci95, type Summary, summarize } from "../eval/metrics.js";
import { mixAdapters } from "../merge/mixAdapters.js";
import type { ProfileSide } from "../profiles/profile.js";
import { coefficientHeatmap, largest } from "../report/heatmap.js";
import { DEFAULT_NEAREST, lossCandidates, MIXTURE_TEMPERATURES } from "../select/candidates.js";
import { DEFAULT_FIT_TOP, DEFAULT_FIT_TRIALS, fitWeights } from "../select/fitWeights.js";
import { LlamaScorer } from "../select/llamaScorer.js";
import { DEFAULT_SCORE_EXAMPLES, scoreExamples, selectByLoss } from "../select/selectByLoss.js";
import { openTestbedBackend } from "../testbed/backend.js";
import { majorityScore } from "../testbed/majority.js";
import { DEFAULT_TESTBED, hasModel, TESTBED_FILES, testbedPaths } from "../testbed/paths.js";
import { DEFAULT_EVAL, type EvalSettings, evalRecords, scoreBackend } from "../testbed/references.js";
import { familyOfTask, type Selection } from "../testbed/tasks.js";
import { checkOutDir, writeDirAtomic } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { bankGram } from "../weights/gram.js";
import { leaveOneOutWeights } from "../weights/leaveOneOut.js";
import { neuralSideError, WEIGHT_METHODS, type WeightMethod } from "../weights/methods.js";
import type { ScalarMlp } from "../weights/mlp.js";
import { trainScalarMlp } from "../weights/trainMlp.js";
import { demoHtml } from "./reportHtml.js";
import {
  BASELINES,
  configName,
  type FamilyShares,
  familyShareRows,
  gapRows,
  LORAMIX_ROWS,
  readingNotes,
  recommendation,
  type ScoreGrid,
  TABLE_METRICS,
  type TableLayout,
  type TaskScore,
  tableRows,
  textTable,
  verdict,
} from "./tables.js";

/**
 * Test records per task by default (the testbed issue: per-task numbers that mean something).
 * 11 tasks × 19 variants × 50 records plus selection and fitting took 646 s on 2 cores (2026-12-03).
 */
export const DEMO_LIMIT = 50;

export interface DemoOptions {
  /** Testbed directory (default: the shipped one). */
  testbed?: string;
  shared?: string;
  /** Output directory, replaced atomically: report.html, results.json, tables.txt, heatmaps. */
  out: string;
  /** Leave-one-out over every task of the bank instead of the held-out ones. */
  all?: boolean;
  /** Explicit target tasks (overrides the held-out set and `all`). */
  targets?: string[];
  /** Test records per task. */
  limit?: number;
  maxNewTokens?: number;
  metrics?: Metric[];
  methods?: WeightMethod[];
  /** Side of the profiles behind the paper's configurations and the nearest adapter (default "both", SPEC §2). */
  side?: ProfileSide;
  /** --select loss: nearest single adapters among the candidates, and train records scored. */
  candidates?: number;
  scoreExamples?: number;
  /** Also evaluate --select fit (default true). */
  fit?: boolean;
  /** Hidden width of the neural weighting's MLP (paper: 4000; the testbed's 60 entries need far less). */
  mlpHidden?: number;
  threads?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface VariantScore extends TaskScore {
  rougeLCi: number;
  exactMatchCi: number;
  predictions: string[];
}

/** A variant's scores on one task from the Rouge-L and EM summaries over its records. */
function variantScore(rougeL: Summary, exactMatch: Summary, predictions: string[]): VariantScore {
  return {
    rougeL: rougeL.mean,
    exactMatch: exactMatch.mean,
    rougeLCi: ci95(rougeL),
    exactMatchCi: ci95(exactMatch),
    predictions,
  };
}

export interface TargetRow {
  task: string;
  family: string;
  /** Per variant: mean Rouge-L / EM over this task's records, their 95% half-widths, and the predictions. */
  scores: Record<string, VariantScore>;
  references: string[][];
  majorityAnswer: string;
}

export interface DemoResult {
  out: string;
  targets: string[];
  candidates: string[];
  layout: TableLayout;
  grid: ScoreGrid;
  /** Per mixed variant and target: the weight on the target's family (siblings sharing its answers). */
  familyShares: FamilyShares;
  rows: TargetRow[];
  tables: string;
  notes: string[];
  eval: EvalSettings;
  seconds: number;
}

/**
 * The paper's experiment on the shipped testbed (SPEC §6 leave-one-out): for each target task the
 * bank's other adapters are weighted by every configuration (method × metric), mixed (linear),
 * and evaluated on the task's test split with llama.cpp, beside the base model, the majority
 * answer, the nearest single adapter, the uniform average and the task's own trained adapter.
 */
export async function runDemo({
  testbed = DEFAULT_TESTBED,
  shared,
  out,
  all = false,
  targets: explicitTargets,
  limit = DEMO_LIMIT,
  maxNewTokens = DEFAULT_EVAL.maxNewTokens,
  metrics = [...TABLE_METRICS],
  methods = [...WEIGHT_METHODS],
  side = "both",
  candidates: nearestCount = DEFAULT_NEAREST,
  scoreExamples: exampleCount = DEFAULT_SCORE_EXAMPLES,
  fit = true,
  mlpHidden = 64,
  threads = 1,
  signal,
  progress,
}: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  await checkOutDir(out, "demo");
  const paths = testbedPaths(testbed, shared);
  const selectionFile = join(paths.dir, TESTBED_FILES.selection);
  if (!existsSync(join(paths.dir, "bank.sqlite")) || !existsSync(selectionFile)) {
    throw new LoramixError("BANK", `${paths.dir}: not a built testbed (run \`loramix testbed build\`)`);
  }
  if (!hasModel(paths))
    throw new LoramixError("INPUT", `${paths.model}: the TinyStories-656K model is missing`);
  if (!(Number.isInteger(limit) && limit >= 1))
    throw usageError(`limit must be a positive integer, got ${limit}`);
  const settings: EvalSettings = { ...DEFAULT_EVAL, limit, maxNewTokens };
  const selection = JSON.parse(await readFile(selectionFile, "utf8")) as Selection;
  const familyOf = familyOfTask(selection);

  const bank = await Bank.open(paths.dir);
  const tmp = await mkdtemp(join(tmpdir(), "loramix-demo-"));
  let backend: LlamaBackend | undefined;
  let closeBackend: (() => Promise<void>) | undefined;
  try {
    const entries = bank.entries().filter((e) => e.adapterPath !== null);
    const ids = entries.map((e) => e.id);
    const n = ids.length;
    const column = new Map(ids.map((id, j) => [id, j]));
    const targets = explicitTargets ?? (all ? ids : selection.heldOut);
    if (targets.length === 0) throw usageError("no target tasks");
    for (const t of targets)
      if (!column.has(t)) throw usageError(`task "${t}" is not in the testbed's bank ${paths.dir}`);
    if (n < 3)
      throw new LoramixError("BANK", `${paths.dir}: the demo needs at least 3 adapters, the bank has ${n}`);

    const needed: Metric[] = [...new Set<Metric>([...metrics, "js"])];
    const matrices = new Map<Metric, Float64Array>();
    if (side !== "both" && methods.includes("neural")) throw neuralSideError(side);
    for (const d of await bankDistanceMatrices(bank, needed, { side, signal, progress })) {
      matrices.set(d.metric, reorder(d.values, d.ids, ids));
    }
    // The shipped bank has its output-side profiles; a testbed built by an older loramix gets them here.
    if (bank.staleIds("output").length > 0) await indexBank(bank, { side: "output", signal, progress });
    const [outputJs] = await bankDistanceMatrices(bank, ["js"], { side: "output", signal, progress });
    const answerJs = reorder((outputJs as BankDistances).values, (outputJs as BankDistances).ids, ids);
    const notes: string[] = [
      `testbed ${paths.dir}: ${n} trained adapters (TinyStories-656K, LoRA on q/k/v), ${targets.length} target tasks (${explicitTargets ? "given" : all ? "all, leave-one-out" : "the held-out task of each family"}); each target's own adapter is masked`,
      `evaluation: first ${settings.limit} test records per task, greedy, at most ${settings.maxNewTokens} new tokens, prompts cut from the left to fit the model's ${settings.context}-token context`,
      "tables: mean ± population std over the target tasks of each task's mean score; merge: linear (SPEC §5)",
      `profiles: ${side === "both" ? "input + output (SPEC §2)" : `${side} side`} for the paper's configurations and the nearest adapter; output side for loramix's rows`,
      `--select loss: ${nearestCount} nearest adapters by output-side JS + normalized mixtures at τ = ${MIXTURE_TEMPERATURES.join(", ")}, scored on ${exampleCount} train records of the target (the testbed's training rule: ${settings.context}-token context, ${settings.maxNewTokens} answer tokens); the lowest loss is evaluated`,
    ];

    const weightRows = new Map<string, Float64Array>();
    const mlps = new Map<Metric, ScalarMlp>();
    if (methods.includes("neural")) {
      const gram = await bankGram(bank, { signal, progress });
      const inTarget = new Set(targets);
      // Trained without the targets, so their numbers are out of sample; with every task a target, the paper's seeded 80% split.
      const trainIds = ids.filter((id) => !inTarget.has(id));
      const useIds = trainIds.length >= 5 ? trainIds : ids;
      notes.push(
        useIds === ids
          ? `neural: MLP (H=${mlpHidden}) trained on a seeded 80% of all ${n} entries, so some targets are in-sample`
          : `neural: MLP (H=${mlpHidden}) trained on the ${useIds.length} non-target entries (seeded 80% of them), so every target is out of sample`,
      );
      const g = reorder(gram.entryValues, gram.ids, useIds);
      for (const metric of metrics) {
        throwIfAborted(signal);
        mlps.set(
          metric,
          await trainScalarMlp({
            distances: reorder(matrices.get(metric) as Float64Array, ids, useIds),
            gram: g,
            params: gram.params,
            ids: useIds,
            metric,
            gramKey: gram.key,
            hidden: mlpHidden,
            signal,
          }),
        );
      }
    }
    for (const method of methods) {
      for (const metric of metrics) {
        const w = leaveOneOutWeights(matrices.get(metric) as Float64Array, n, {
          method,
          mlp: mlps.get(metric),
        });
        weightRows.set(configName(method, metric), w);
      }
    }
    const uniform = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (j !== i) uniform[i * n + j] = 1 / (n - 1);
    weightRows.set("nearest", nearestRows(matrices.get("js") as Float64Array, n));
    weightRows.set("nearest-output", nearestRows(answerJs, n));
    weightRows.set("uniform", uniform);
    const configs = methods.flatMap((method) => metrics.map((metric) => configName(method, metric)));

    ({ backend, close: closeBackend } = await openTestbedBackend(paths, {
      context: settings.context,
      threads,
    }));
    // --select loss, per target: the bank without the target, as a user with a new dataset has it.
    const selected = new Float64Array(n * n);
    const fitted = new Float64Array(n * n);
    const selections: Record<
      string,
      {
        chosen: string;
        seconds: number;
        baseLoss: number;
        candidates: { label: string; loss: number }[];
        fit?: { loss: number; startLoss: number; seconds: number };
      }
    > = {};
    const scorer = LlamaScorer.over(backend);
    for (const [t, task] of targets.entries()) {
      throwIfAborted(signal);
      const i = column.get(task) as number;
      const entry = entries[i] as (typeof entries)[number];
      const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
      const mask = ids.map((_, j) => j === i);
      const examples = scoreExamples(dataset.splits.train, backend.tokenizer, {
        count: exampleCount,
        context: settings.context,
        answerTokens: settings.maxNewTokens,
        eosId: backend.eosId ?? 2,
      });
      const selection = await selectByLoss({
        scorer,
        adapters: entries.map((e) => e.adapterPath as string),
        candidates: lossCandidates(answerJs.subarray(i * n, (i + 1) * n), ids, {
          nearest: nearestCount,
          mask,
        }),
        examples,
        signal,
      });
      const chosen = selection.scored[selection.chosen] as (typeof selection.scored)[number];
      selected.set(chosen.weights, i * n);
      selections[task] = {
        chosen: chosen.label,
        seconds: selection.seconds,
        baseLoss: selection.baseLoss,
        candidates: selection.scored.map((c) => ({ label: c.label, loss: c.loss })),
      };
      if (fit) {
        const f = await fitWeights({
          scorer,
          adapters: entries.map((e) => e.adapterPath as string),
          scored: selection.scored,
          examples,
          signal,
        });
        fitted.set(f.loss < chosen.loss ? f.weights : chosen.weights, i * n);
        (selections[task] as NonNullable<(typeof selections)[string]>).fit = {
          loss: f.loss,
          startLoss: f.startLoss,
          seconds: f.seconds,
        };
      }
      progress?.({ phase: "select", done: t + 1, total: targets.length, unit: "targets", detail: task });
    }
    weightRows.set("select-loss", selected);
    if (fit) weightRows.set("select-fit", fitted);
    const selectSeconds = summarize(Object.values(selections).map((x) => x.seconds));
    notes.push(
      `--select loss: ${selectSeconds.mean.toFixed(1)} ± ${selectSeconds.std.toFixed(1)} s per target to score its candidates`,
    );
    if (fit) {
      const fitSeconds = summarize(Object.values(selections).map((x) => x.fit?.seconds ?? 0));
      notes.push(
        `--select fit: ${DEFAULT_FIT_TRIALS} trials over the ${DEFAULT_FIT_TOP} best candidates, ${fitSeconds.mean.toFixed(1)} ± ${fitSeconds.std.toFixed(1)} s per target on top of selection`,
      );
    }
    const mixed = [
      ...configs,
      ...LORAMIX_ROWS.filter((r) => fit || r !== "select-fit"),
      "nearest",
      "uniform",
    ];

    const familyShares: FamilyShares = new Map(
      mixed.map((variant) => {
        const w = weightRows.get(variant) as Float64Array;
        const perTarget = targets.map((task) => {
          const i = column.get(task) as number;
          const family = familyOf.get(task);
          let share = 0;
          for (let j = 0; j < n; j++)
            if (familyOf.get(ids[j] as string) === family) share += w[i * n + j] as number;
          return [task, share] as const;
        });
        return [variant, new Map(perTarget)];
      }),
    );

    const grid: ScoreGrid = new Map([...BASELINES, ...LORAMIX_ROWS, ...configs].map((v) => [v, new Map()]));
    const rows: TargetRow[] = [];
    const units = targets.length * (mixed.length + 2);
    let done = 0;
    const tick = (task: string) =>
      progress?.({ phase: "demo", done: ++done, total: units, unit: "evaluations", detail: task });
    for (const task of targets) {
      throwIfAborted(signal);
      const i = column.get(task) as number;
      const entry = entries[i] as (typeof entries)[number];
      const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
      const records = evalRecords(dataset.splits.test, backend.tokenizer, settings);
      if (records.length === 0) throw new LoramixError("INPUT", `${entry.dataPath}: no test records`);
      const row: TargetRow = {
        task,
        family: familyOf.get(task) ?? "",
        scores: {},
        references: records.map((r) => r.output),
        majorityAnswer: "",
      };
      const put = (variant: string, s: VariantScore) => {
        row.scores[variant] = s;
        grid.get(variant)?.set(task, { rougeL: s.rougeL, exactMatch: s.exactMatch });
      };
      const majority = majorityScore(dataset.splits.train, dataset.splits.test.slice(0, settings.limit));
      row.majorityAnswer = majority.answer;
      put(
        "majority",
        variantScore(
          majority.rougeL,
          majority.exactMatch,
          records.map(() => majority.answer),
        ),
      );
      const base = await scoreBackend(backend, records, settings, signal);
      put("base", variantScore(base.rougeL, base.exactMatch, base.perRecord.predictions));
      tick(task);
      const evalAdapter = async (dir: string) => {
        const b = await (backend as LlamaBackend).withAdapter(dir);
        try {
          const s = await scoreBackend(b, records, settings, signal);
          return variantScore(s.rougeL, s.exactMatch, s.perRecord.predictions);
        } finally {
          await b.dispose();
        }
      };
      put("trained", await evalAdapter(entry.adapterPath as string));
      tick(task);
      for (const variant of mixed) {
        throwIfAborted(signal);
        const w = (weightRows.get(variant) as Float64Array).subarray(i * n, (i + 1) * n);
        const dir = join(tmp, `${task}-${variant.replace("/", "-")}`);
        await mixAdapters({
          adapters: entries.map((e) => e.adapterPath as string),
          weights: [...w],
          out: dir,
          signal,
        });
        put(variant, await evalAdapter(dir));
        await rm(dir, { recursive: true, force: true });
        tick(task);
      }
      rows.push(row);
    }

    const layout: TableLayout = { metrics, methods };
    const targetIdx = targets.map((t) => column.get(t) as number);
    const tables = [
      "Table 1 — Rouge-L (mean ± std over tasks)",
      textTable(tableRows(grid, "rougeL", layout)),
      "",
      "Table 3 — exact match (mean ± std over tasks)",
      textTable(tableRows(grid, "exactMatch", layout)),
      "",
      "Share of the base → trained gap closed (Rouge-L)",
      textTable(gapRows(grid, "rougeL", layout)),
      "",
      "Share of the base → trained gap closed (exact match)",
      textTable(gapRows(grid, "exactMatch", layout)),
      "",
      "Weight on the target's family (the other tasks that share its answers)",
      textTable(familyShareRows(familyShares, layout)),
      "",
      verdict(grid, configs, "rougeL"),
      verdict(grid, configs, "exactMatch"),
      "",
      recommendation(grid, configs, "rougeL"),
      recommendation(grid, configs, "exactMatch"),
      ...readingNotes(grid, configs, meanMaxWeight(weightRows, targetIdx, n)),
    ].join("\n");

    const coefficients = configs.map((c) => {
      const w = weightRows.get(c) as Float64Array;
      const values = new Float64Array(targets.length * n);
      for (const [r, i] of targetIdx.entries()) values.set(w.subarray(i * n, (i + 1) * n), r * n);
      return values;
    });
    // One scale for every figure, so equal colours mean equal weights across configurations.
    const scaleMax = Math.max(0, ...coefficients.map(largest));
    const figures = configs.map((c, k) => {
      const values = coefficients[k] as Float64Array;
      const map = coefficientHeatmap(values, targets.length, n, (r, col) => col === targetIdx[r], scaleMax);
      return {
        config: c,
        file: `heatmap-${c.replace("/", "-")}.png`,
        png: map.png,
        values,
        ownColumn: targetIdx,
      };
    });
    const seconds = (performance.now() - started) / 1000;
    notes.push(`run time ${seconds.toFixed(0)} s`);
    const results = {
      loramix: loramixVersion(),
      created: new Date().toISOString(),
      testbed: paths.dir,
      eval: settings,
      notes,
      candidates: ids,
      targets,
      configurations: configs,
      weights: Object.fromEntries(
        [...weightRows].map(([k, w]) => [
          k,
          Object.fromEntries(targetIdx.map((i) => [ids[i], [...w.subarray(i * n, (i + 1) * n)]])),
        ]),
      ),
      selections,
      familyWeight: Object.fromEntries([...familyShares].map(([v, m]) => [v, Object.fromEntries(m)])),
      rows,
      tables,
    };
    const html = demoHtml({
      grid,
      familyShares,
      layout,
      rows,
      notes,
      figures,
      scaleMax,
      configs,
      candidates: ids,
    });
    throwIfAborted(signal);
    await writeDirAtomic(
      out,
      async (dir) => {
        await writeFile(join(dir, "results.json"), `${JSON.stringify(results, null, 1)}\n`);
        await writeFile(join(dir, "tables.txt"), `${tables}\n`);
        await writeFile(join(dir, "report.html"), html);
        for (const f of figures) await writeFile(join(dir, f.file), f.png);
      },
      "demo",
    );
    return {
      out,
      targets,
      candidates: ids,
      layout,
      grid,
      familyShares,
      rows,
      tables,
      notes,
      eval: settings,
      seconds,
    };
  } finally {
    await closeBackend?.();
    bank.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Row i: weight 1 on the entry nearest to i (ties by bank order), i itself excluded. */
function nearestRows(distances: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    let best = -1;
    for (let j = 0; j < n; j++) {
      if (j !== i && (best < 0 || (distances[i * n + j] as number) < (distances[i * n + best] as number)))
        best = j;
    }
    out[i * n + best] = 1;
  }
  return out;
}

/** A square matrix over `from` ids, restricted and reordered to `to` ids. */
function reorder(values: Float64Array, from: string[], to: string[]): Float64Array {
  const m = from.length;
  const at = to.map((id) => {
    const k = from.indexOf(id);
    if (k < 0) throw new LoramixError("BANK", `no distances for entry "${id}"`);
    return k;
  });
  const out = new Float64Array(to.length * to.length);
  for (const [r, a] of at.entries()) {
    for (const [c, b] of at.entries()) out[r * to.length + c] = values[a * m + b] as number;
  }
  return out;
}

/** Each configuration's largest weight, averaged over the targets (rows `targetIdx` of n weights). */
function meanMaxWeight(
  weightRows: Map<string, Float64Array>,
  targetIdx: number[],
  n: number,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [config, w] of weightRows) {
    let sum = 0;
    for (const i of targetIdx) sum += Math.max(...w.subarray(i * n, (i + 1) * n));
    out.set(config, targetIdx.length > 0 ? sum / targetIdx.length : 0);
  }
  return out;
}
