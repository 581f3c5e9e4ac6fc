import { defineCommand } from "citty";
import { hfToGguf } from "../../convert/hfToGguf.js";
import { peftToGguf } from "../../convert/peftToGguf.js";
import { usageError } from "../../errors.js";
import { createProgress, info, interrupt } from "../context.js";

const OUT_TYPES = ["auto", "f32", "f16"] as const;

function outTypeOf(value: string): (typeof OUT_TYPES)[number] {
  const t = value as (typeof OUT_TYPES)[number];
  if (!OUT_TYPES.includes(t))
    throw usageError(`--outtype must be one of ${OUT_TYPES.join(", ")}, got "${value}"`);
  return t;
}

const hfToGgufCommand = defineCommand({
  meta: {
    name: "hf-to-gguf",
    description: "Convert a Hugging Face Llama/Mistral model directory to GGUF for llama.cpp.",
  },
  args: {
    model: {
      type: "positional",
      required: true,
      description: "Model directory (config.json, tokenizer.json, *.safetensors)",
    },
    out: { type: "string", required: true, description: "Output .gguf file" },
    outtype: {
      type: "string",
      default: "auto",
      description: "auto | f32 | f16 (auto keeps F32 models in F32)",
    },
  },
  async run({ args }) {
    const progress = createProgress();
    const started = performance.now();
    try {
      const r = await hfToGguf({
        modelDir: args.model,
        out: args.out,
        outType: outTypeOf(args.outtype),
        signal: interrupt.signal,
        progress,
      });
      info(
        `${r.out}: ${r.tensors} tensors (${r.outType}), ${r.metadataKeys} metadata keys, ${((performance.now() - started) / 1000).toFixed(2)} s`,
      );
    } finally {
      progress.stop();
    }
  },
});

const peftToGgufCommand = defineCommand({
  meta: {
    name: "peft-to-gguf",
    description: "Convert a PEFT LoRA adapter directory to a llama.cpp LoRA GGUF.",
  },
  args: {
    adapter: {
      type: "positional",
      required: true,
      description: "Adapter directory (adapter_config.json + adapter_model.safetensors)",
    },
    base: { type: "string", required: true, description: "Base model: directory, config.json, or .gguf" },
    out: { type: "string", required: true, description: "Output .gguf file" },
    outtype: {
      type: "string",
      default: "auto",
      description: "auto | f32 | f16 (auto keeps F32 adapters in F32)",
    },
  },
  async run({ args }) {
    const progress = createProgress();
    const started = performance.now();
    try {
      const r = await peftToGguf({
        adapterDir: args.adapter,
        base: args.base,
        out: args.out,
        outType: outTypeOf(args.outtype),
        signal: interrupt.signal,
        progress,
      });
      info(
        `${r.out}: ${r.tensors} tensors (${r.outType}), adapter.lora.alpha ${r.alpha}, ${((performance.now() - started) / 1000).toFixed(2)} s`,
      );
    } finally {
      progress.stop();
    }
  },
});

export default defineCommand({
  meta: { name: "convert", description: "Convert models and adapters to GGUF (llama.cpp)." },
  subCommands: { "hf-to-gguf": hfToGgufCommand, "peft-to-gguf": peftToGgufCommand },
});
