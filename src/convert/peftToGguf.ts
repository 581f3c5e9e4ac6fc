import { basename, resolve } from "node:path";
import { formatError, inputError } from "../errors.js";
import { type GgufMetadata, type GgufTensorToWrite, type GgufWriteType, writeGguf } from "../formats/gguf.js";
import { readGgufHeader } from "../formats/ggufRead.js";
import { readLlamaConfig } from "../formats/llamaConfig.js";
import { isNonEmpty, loadAdapter } from "../formats/peft.js";
import { SafetensorsReader } from "../formats/safetensors.js";
import { checkOutFile } from "../util/atomic.js";
import type { ProgressSink } from "../util/progress.js";
import { ggufTensorName, permuteForRope } from "./llamaNames.js";
import { GGUF_OUTPUT_KEY, ggufOutput } from "./outputKey.js";

export interface PeftToGgufOptions {
  /** A PEFT LoRA directory (adapter_config.json + adapter_model.safetensors). */
  adapterDir: string;
  /** The base model: a Hugging Face directory, its config.json, or its GGUF file (head counts are read from it). */
  base: string;
  out: string;
  /** "auto": F32 for an F32 adapter, else F16. */
  outType?: "auto" | "f32" | "f16";
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface PeftToGgufResult {
  out: string;
  tensors: number;
  /** The `adapter.lora.alpha` written: llama.cpp scales by alpha / r. */
  alpha: number;
  outType: GgufWriteType;
}

interface Heads {
  nHead: number;
  nHeadKv: number;
}

/**
 * Converts a PEFT LoRA adapter to a llama.cpp LoRA GGUF as convert_lora_to_gguf.py does:
 * `blk.N.<tensor>.weight.lora_a` with dims [in, r] and `.lora_b` with dims [r, out] (llama.cpp's
 * loader checks exactly these), lora_B rows of q and k permuted like the base weights.
 * llama.cpp scales every pair by `alpha / r` with `r` the pair's own rank; rsLoRA (`alpha / √r`)
 * becomes `alpha·√r`, and modules whose rank differs from the config's (rank_pattern) get the
 * remaining factor folded into lora_B, so every module keeps PEFT's scaling.
 */
export async function peftToGguf({
  adapterDir,
  base,
  out,
  outType = "auto",
  signal,
  progress,
}: PeftToGgufOptions): Promise<PeftToGgufResult> {
  await checkOutFile(out, ggufOutput("adapter"));
  const adapter = await loadAdapter(resolve(adapterDir));
  const { r, loraAlpha, useRslora, raw } = adapter.config;
  if (isNonEmpty(raw.alpha_pattern)) {
    throw formatError(
      adapter.dir,
      "adapter_config.json: alpha_pattern is not supported by the GGUF conversion",
    );
  }
  // Conv1D-style weights (GPT-2) are stored transposed; a llama.cpp LoRA never is.
  if (raw.fan_in_fan_out === true)
    throw formatError(
      adapter.dir,
      "adapter_config.json: fan_in_fan_out adapters (GPT-2 style Conv1D) cannot become a llama-architecture GGUF",
    );
  const heads = await baseHeads(base);
  const alpha = useRslora ? loraAlpha * Math.sqrt(r) : loraAlpha;
  const type: GgufWriteType =
    outType === "f32" ? "F32" : outType === "f16" ? "F16" : adapter.dtype === "F32" ? "F32" : "F16";
  const reader = await SafetensorsReader.open(adapter.file);
  try {
    const tensors: GgufTensorToWrite[] = [];
    for (const m of adapter.modules) {
      const target = ggufTargetOf(m.module);
      if (target === null)
        throw formatError(
          adapter.file,
          `LoRA on "${m.module}" cannot be converted (only attention and MLP projections)`,
        );
      const permuteHeads = target.endsWith("attn_q.weight")
        ? heads.nHead
        : target.endsWith("attn_k.weight")
          ? heads.nHeadKv
          : 0;
      const peftScale = useRslora ? loraAlpha / Math.sqrt(m.r) : loraAlpha / m.r;
      const fold = peftScale / (alpha / m.r);
      tensors.push({
        name: `${target}.lora_a`,
        type,
        dims: [m.inFeatures, m.r],
        data: () => reader.readF32(m.a),
      });
      tensors.push({
        name: `${target}.lora_b`,
        type,
        dims: [m.r, m.outFeatures],
        data: async () => {
          let b = await reader.readF32(m.b);
          if (permuteHeads > 0) b = permuteForRope(b, m.outFeatures, permuteHeads);
          if (Math.abs(fold - 1) > 1e-12) for (let i = 0; i < b.length; i++) b[i] = (b[i] as number) * fold;
          return b;
        },
      });
    }
    if (tensors.length === 0) throw inputError(adapter.dir, "adapter has no LoRA modules");
    const metadata: GgufMetadata = {
      "general.architecture": { type: "string", value: "llama" },
      "general.type": { type: "string", value: "adapter" },
      "general.name": { type: "string", value: basename(adapter.dir) },
      "general.file_type": { type: "u32", value: type === "F32" ? 0 : 1 },
      "general.quantization_version": { type: "u32", value: 2 },
      "adapter.type": { type: "string", value: "lora" },
      "adapter.lora.alpha": { type: "f32", value: Math.fround(alpha) },
      [GGUF_OUTPUT_KEY]: { type: "string", value: "adapter" },
    };
    await writeGguf(out, { metadata, tensors, signal, progress });
    return { out, tensors: tensors.length, alpha: Math.fround(alpha), outType: type };
  } finally {
    await reader.close();
  }
}

/** `base_model.model.model.layers.3.self_attn.q_proj` → `blk.3.attn_q.weight`; null when not a layer projection. */
export function ggufTargetOf(module: string): string | null {
  const m = /(?:^|\.)(model\.layers\.\d+\.(?:self_attn|mlp)\.[a-z_]+_proj)$/.exec(module);
  if (m === null) return null;
  try {
    return ggufTensorName(`${m[1]}.weight`);
  } catch {
    return null;
  }
}

async function baseHeads(base: string): Promise<Heads> {
  if (base.endsWith(".gguf")) {
    const file = await readGgufHeader(base);
    const arch = file.metadata["general.architecture"];
    if (arch?.type !== "string" || arch.value !== "llama")
      throw formatError(base, "not a llama-architecture GGUF");
    const count = (key: string): number | undefined => {
      const v = file.metadata[key];
      return v?.type === "u32" || v?.type === "i32" ? v.value : undefined;
    };
    const nHead = count("llama.attention.head_count");
    if (nHead === undefined || nHead <= 0) throw formatError(base, "no llama.attention.head_count");
    return { nHead, nHeadKv: count("llama.attention.head_count_kv") ?? nHead };
  }
  const config = await readLlamaConfig(base);
  return { nHead: config.nHead, nHeadKv: config.nHeadKv };
}
