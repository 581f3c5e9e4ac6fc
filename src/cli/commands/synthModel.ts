import { resolve } from "node:path";
import { defineCommand } from "citty";
import { SYNTH_MODEL_SHAPES, type SynthModelShapeName, synthModel } from "../../synth/synthModel.js";
import { createProgress, info, interrupt } from "../context.js";
import { integerAtLeast, oneOf } from "../options.js";

export default defineCommand({
  meta: {
    name: "synth-model",
    description:
      "Write a GGUF of a real model's shape with random weights (Q4_0) and a real vocabulary: for timing and memory, never for quality",
  },
  args: {
    out: { type: "string", required: true, description: "GGUF file to write" },
    shape: {
      type: "string",
      default: "mistral-7b",
      description: `Model shape: ${Object.keys(SYNTH_MODEL_SHAPES).join(", ")}`,
    },
    vocab: {
      type: "string",
      required: true,
      description: "SentencePiece tokenizer.model giving the vocabulary (e.g. Mistral's)",
    },
    seed: { type: "string", default: "0", description: "Seed of the weights" },
  },
  async run({ args }) {
    const shape = oneOf("shape", args.shape, Object.keys(SYNTH_MODEL_SHAPES) as SynthModelShapeName[]);
    const progress = createProgress();
    try {
      const result = await synthModel({
        out: resolve(args.out),
        shape,
        vocab: resolve(args.vocab),
        seed: integerAtLeast("seed", args.seed, 0) ?? 0,
        signal: interrupt.signal,
        progress,
      });
      progress.stop();
      info(
        `${result.out}: synthetic ${shape} (random weights), ${(result.parameters / 1e9).toFixed(2)}B parameters, ` +
          `${(result.bytes / 1e9).toFixed(2)} GB, ${result.seconds.toFixed(1)} s`,
      );
    } finally {
      progress.stop();
    }
  },
});
