import { defineCommand } from "citty";
import { usageError } from "../../errors.js";
import { SYNTH_LAYOUTS, type SynthLayoutName, synthBank } from "../../synth/synthBank.js";
import { createProgress, info, interrupt } from "../context.js";

export default defineCommand({
  meta: {
    name: "synth-bank",
    description: "Generate a bank of synthetic (seeded, untrained) adapters paired with real Super-NI tasks",
  },
  args: {
    dir: {
      type: "positional",
      required: true,
      description: "Output directory (adapters/<task>/ and SYNTHETIC.md)",
    },
    entries: {
      type: "string",
      required: true,
      description: "Number of adapters (the first N task files by name)",
    },
    data: { type: "string", required: true, description: "Directory of Super-NI task JSON files" },
    layout: {
      type: "string",
      default: "mistral-7b",
      description: `Adapter layout: ${Object.keys(SYNTH_LAYOUTS).join(", ")}`,
    },
    seed: { type: "string", default: "0", description: "Seed of the generator" },
  },
  async run({ args }) {
    const entries = Number(args.entries);
    const seed = Number(args.seed);
    if (!Number.isInteger(seed) || seed < 0)
      throw usageError(`--seed must be a non-negative integer, got ${args.seed}`);
    if (!Object.hasOwn(SYNTH_LAYOUTS, args.layout)) {
      throw usageError(`unknown --layout "${args.layout}" (use ${Object.keys(SYNTH_LAYOUTS).join(", ")})`);
    }
    const progress = createProgress();
    try {
      const result = await synthBank({
        dir: args.dir,
        data: args.data,
        entries,
        layout: args.layout as SynthLayoutName,
        seed,
        signal: interrupt.signal,
        progress,
      });
      info(
        `${result.entries.length} synthetic adapters in ${args.dir}/adapters (${(result.bytes / 1e9).toFixed(2)} GB, ` +
          `${result.seconds.toFixed(1)} s, ${(result.bytes / 1e6 / result.seconds).toFixed(0)} MB/s)`,
      );
    } finally {
      progress.stop();
    }
  },
});
