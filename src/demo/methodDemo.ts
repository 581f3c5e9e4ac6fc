import { mkdir, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { importSni } from "../bank/importSni.js";
import { indexBank } from "../bank/indexBank.js";
import { initBank } from "../bank/store.js";
import { loadDataset } from "../datasets/load.js";
import { inputError } from "../errors.js";
import { generateAdapter } from "../generate/generateAdapter.js";
import type { CandidateWeight } from "../generate/record.js";
import { type LooResult, runLoo } from "../loo/runLoo.js";
import { synthBank } from "../synth/synthBank.js";
import type { ProgressSink } from "../util/progress.js";
import { removeScratch, scratchDir } from "../util/scratch.js";

export interface MethodDemoTarget {
  task: string;
  categories: string[];
  /** The largest weights, with each contributor's categories. */
  top: (CandidateWeight & { categories: string[] })[];
  seconds: number;
}

export interface MethodDemoResult {
  bankEntries: number;
  targets: MethodDemoTarget[];
  loo: LooResult;
}

/** Every `HOLD_OUT_EVERY`-th task is a "new dataset" the bank never saw. */
const HOLD_OUT_EVERY = 12;

/**
 * `loramix demo --synthetic`, the method without a model: real Super-NI datasets
 * (../shared/data/sni) paired with synthetic adapters in which tasks of one Super-NI category share a
 * component. It shows what can be shown without trained adapters: which bank entries a new dataset
 * draws on, and how well each weighting recovers held-out adapters by leave-one-out. Every output
 * says that the adapters are synthetic.
 */
export async function runMethodDemo({
  sni,
  out,
  tasks = 60,
  signal,
  progress,
}: {
  sni: string;
  out: string;
  tasks?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
}): Promise<MethodDemoResult> {
  const files = (await readdir(sni).catch(() => [] as string[]))
    .filter((f) => /^task\d+_.*\.json$/.test(f))
    .sort();
  if (files.length < tasks)
    throw inputError(sni, `${files.length} Super-NI task files, the demo needs ${tasks}`);
  const chosen = files.slice(0, tasks);
  const heldOut = chosen.filter((_, i) => i % HOLD_OUT_EVERY === HOLD_OUT_EVERY - 1);
  const inBank = chosen.filter((f) => !heldOut.includes(f));

  const work = await scratchDir("demo");
  try {
    const taskDir = join(work, "tasks");
    await mkdir(taskDir);
    for (const f of inBank) await symlink(join(sni, f), join(taskDir, f));
    const synth = await synthBank({
      dir: join(work, "synth"),
      data: taskDir,
      entries: inBank.length,
      layout: "tiny",
      signal,
      progress,
    });
    const bank = await initBank(join(work, "bank"), { tokenizer: "mistral" });
    try {
      await importSni(bank, { tasks: taskDir, adapters: join(work, "synth", "adapters"), signal, progress });
      await indexBank(bank, { threads: 1, signal, progress });
      const categoriesOf = new Map(synth.entries.map((e) => [e.id, e.categories]));
      const targets: MethodDemoTarget[] = [];
      for (const file of heldOut) {
        const started = performance.now();
        const task = file.replace(/\.json$/, "");
        const result = await generateAdapter(bank, {
          data: join(sni, file),
          metric: "js",
          method: "normalized",
          topK: 8,
          out: join(out, "adapters", task),
          signal,
          progress,
        });
        const categories = ((await loadDataset(join(sni, file))).metadata.categories as string[]) ?? [];
        targets.push({
          task,
          categories,
          top: result.weights.slice(0, 5).map((w) => ({ ...w, categories: categoriesOf.get(w.id) ?? [] })),
          seconds: (performance.now() - started) / 1000,
        });
      }
      const loo = await runLoo(bank, {
        metrics: ["kl", "js", "wd", "mmd"],
        methods: ["attentional", "normalized"],
        merges: ["linear"],
        out: join(out, "loo"),
        signal,
        progress,
      });
      return { bankEntries: inBank.length, targets, loo };
    } finally {
      bank.close();
    }
  } finally {
    await removeScratch(work);
  }
}
