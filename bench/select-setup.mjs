// What bench/select-defaults.mjs and bench/select-fit.mjs share: the testbed's bank, its held-out
// rule, output-side JS distances, and llama.cpp scoring with the testbed's training rule (a
// 128-token context, 16 answer tokens), on the non-held-out tasks only.
import { mkdtempSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bankDistanceMatrices } from "../dist/distances/index.js";
import { Bank, hfToGguf, loadDataset } from "../dist/index.js";
import { LlamaScorer, scoreExamples } from "../dist/select/index.js";
import { DEFAULT_EVAL, testbedRule } from "../dist/testbed/index.js";

export const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;

export async function openSelectBench(testbedArg, name) {
  const testbed = resolve(testbedArg ?? "testbed");
  const model = resolve(
    process.env.LORAMIX_SHARED ?? resolve(import.meta.dirname, "../../shared"),
    "models/tinystories-656k",
  );
  const selection = JSON.parse(await readFile(join(testbed, "selection.json"), "utf8"));
  const heldOut = new Set(selection.heldOut);
  const bank = await Bank.open(testbed);
  const entries = bank.entries().filter((e) => e.adapterPath !== null);
  const ids = entries.map((e) => e.id);
  const [d] = await bankDistanceMatrices(bank, ["js"], { side: "output" });
  const tmp = mkdtempSync(join(tmpdir(), `loramix-${name}-`));
  const gguf = join(tmp, "model.gguf");
  await hfToGguf({ modelDir: model, out: gguf });
  const scorer = await LlamaScorer.open({ model: gguf, tokenizer: model, contextSize: DEFAULT_EVAL.context });
  const rule = testbedRule(DEFAULT_EVAL);
  const examples = (records, count) => scoreExamples(records, scorer, rule, count);
  return {
    testbed,
    entries,
    ids,
    scorer,
    tmp,
    /** Each non-held-out task with its first `trainCount` train and `validCount` valid examples and its distances to the bank (in `ids` order). */
    async *tasks(trainCount, validCount) {
      for (const [i, id] of ids.entries()) {
        if (heldOut.has(id)) continue;
        const entry = entries[i];
        const dataset = await loadDataset(entry.dataPath, entry.dataOptions);
        const train = examples(dataset.splits.train, trainCount);
        const valid = examples(dataset.splits.valid, validCount);
        if (valid.length < 8) continue;
        const at = d.ids.indexOf(id) * d.ids.length;
        const distances = Float64Array.from(ids, (x) => d.values[at + d.ids.indexOf(x)]);
        yield { i, id, train, valid, distances, mask: ids.map((_, j) => j === i) };
      }
    },
    async close() {
      await scorer.dispose();
      bank.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
