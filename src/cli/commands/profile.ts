import { defineCommand } from "citty";
import { openDataset } from "../../datasets/open.js";
import { inputError, usageError } from "../../errors.js";
import { PROFILE_FILE, profileToJson } from "../../profiles/profile.js";
import { profileDataset } from "../../profiles/profileDataset.js";
import { checkOutFile, writeOutFile } from "../../util/atomic.js";
import { createProgress, info, interrupt } from "../context.js";
import { SIDE_ARG, sideOption } from "../options.js";

const SPLITS = ["train", "valid", "test"] as const;

export default defineCommand({
  meta: { name: "profile", description: "Token histogram of a dataset's split (SPEC §2), written as JSON." },
  args: {
    file: {
      type: "positional",
      required: true,
      description: "Dataset: Super-NI task JSON, JSONL, JSON array, Parquet, or a dataset directory",
    },
    tokenizer: {
      type: "string",
      default: "mistral",
      description: '"mistral", a tokenizer.json, or a model directory',
    },
    out: { type: "string", required: true, description: "Output profile.json (- for stdout)" },
    side: SIDE_ARG,
    split: { type: "string", default: "train", description: "train | valid | test" },
    threads: {
      type: "string",
      description: "Worker threads (default 1: the calling thread is as fast on 2 cores)",
    },
    "input-field": { type: "string", description: "Field holding the input (JSONL/JSON/Parquet)" },
    "output-field": { type: "string", description: "Field holding the output(s)" },
    "id-field": { type: "string", description: "Field holding the record id" },
  },
  async run({ args }) {
    const split = args.split as (typeof SPLITS)[number];
    if (!SPLITS.includes(split))
      throw usageError(`--split must be one of ${SPLITS.join(", ")}, got "${args.split}"`);
    const threads = args.threads === undefined ? undefined : Number(args.threads);
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
      throw usageError(`--threads must be a positive integer, got "${args.threads}"`);
    }
    if (args.out !== "-") await checkOutFile(args.out, PROFILE_FILE);
    const source = await openDataset(args.file, {
      inputField: args["input-field"],
      outputField: args["output-field"],
      idField: args["id-field"],
    });
    const progress = createProgress();
    const started = performance.now();
    try {
      const { profile, counts } = await profileDataset(source, {
        split,
        tokenizer: args.tokenizer,
        side: sideOption(args.side),
        threads,
        signal: interrupt.signal,
        progress,
      });
      // An empty profile would pass for a real one in every later distance: say so instead.
      if (profile.nRecords === 0)
        throw inputError(
          source.path,
          `no ${split} records among the dataset's ${counts.train + counts.valid + counts.test} (SPEC §1 split); choose another --split or give more records`,
        );
      if (profile.nTokens === 0) throw inputError(source.path, `the ${split} records hold no tokens`);
      const seconds = (performance.now() - started) / 1000;
      const json = `${JSON.stringify(profileToJson(profile))}\n`;
      if (args.out === "-") process.stdout.write(json);
      else await writeOutFile(args.out, json, PROFILE_FILE);
      info(
        `${source.name} (${split}, ${profile.side} side): ${profile.nRecords} records, ${profile.nTokens} tokens, ` +
          `${Math.round(profile.nTokens / Math.max(seconds, 1e-9)).toLocaleString("en-US")} tokens/s` +
          (args.out === "-" ? "" : ` -> ${args.out}`),
      );
    } finally {
      progress.stop();
    }
  },
});
