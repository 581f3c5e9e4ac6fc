import { LoramixError } from "../errors.js";
import {
  LLAMA_PROJECTIONS,
  type LlamaConfig,
  type LlamaProjection,
  projectionShape,
} from "../formats/llamaConfig.js";
import { type Adapter, loadAdapter, loraScaling } from "../formats/peft.js";
import { SafetensorsReader, type TensorToWrite } from "../formats/safetensors.js";
import { seededRandom } from "../util/prng.js";
import { projectionModule } from "./llamaWeights.js";

/** One LoRA pair on a projection: ΔW = scale · B·A, A [r, in], B [out, r] (PEFT layout). */
export interface LoraPair {
  layer: number;
  proj: LlamaProjection;
  inFeatures: number;
  outFeatures: number;
  a: Float32Array;
  b: Float32Array;
}

export interface LoraWeights {
  r: number;
  alpha: number;
  /** alpha / r (alpha / √r with rsLoRA). */
  scale: number;
  useRslora: boolean;
  targets: LlamaProjection[];
  /** Layer-major, then in `targets` order: the order of the shared initialisation draw. */
  pairs: LoraPair[];
}

export const DEFAULT_RANK = 8;
export const DEFAULT_ALPHA = 16;
export const DEFAULT_TARGETS: readonly LlamaProjection[] = ["q_proj", "k_proj", "v_proj"];

/**
 * PEFT's default initialisation, seeded: A ~ kaiming_uniform(a = √5) = U(−1/√in, 1/√in), B = 0, so
 * the adapter starts as the base model. One generator, drawn layer by layer in `targets` order, A
 * row-major: every adapter trained from the same seed starts from the very same A (the testbed
 * relies on that to make its adapters comparable).
 */
export function initLora(
  config: LlamaConfig,
  {
    seed,
    r = DEFAULT_RANK,
    alpha = DEFAULT_ALPHA,
    targets = DEFAULT_TARGETS,
  }: { seed: number; r?: number; alpha?: number; targets?: readonly LlamaProjection[] },
): LoraWeights {
  const random = seededRandom(seed);
  const pairs: LoraPair[] = [];
  for (let layer = 0; layer < config.nLayer; layer++) {
    for (const proj of targets) {
      const [outFeatures, inFeatures] = projectionShape(config, proj);
      const bound = 1 / Math.sqrt(inFeatures);
      const a = new Float32Array(r * inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (2 * random() - 1) * bound;
      pairs.push({ layer, proj, inFeatures, outFeatures, a, b: new Float32Array(outFeatures * r) });
    }
  }
  return { r, alpha, scale: alpha / r, useRslora: false, targets: [...targets], pairs };
}

const peftName = (p: LoraPair, ab: "A" | "B") =>
  `base_model.model.${projectionModule(p.layer, p.proj)}.lora_${ab}.weight`;

/** Tensors for saveAdapter, named as PEFT's save_pretrained names them. */
export function loraTensors(lora: LoraWeights): TensorToWrite[] {
  return lora.pairs.flatMap((p) => [
    { name: peftName(p, "A"), dtype: "F32" as const, shape: [lora.r, p.inFeatures], data: p.a },
    { name: peftName(p, "B"), dtype: "F32" as const, shape: [p.outFeatures, lora.r], data: p.b },
  ]);
}

/** adapter_config.json of a PEFT LoRA on a causal LM. */
export function loraConfig(lora: LoraWeights, baseModel: string): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: lora.r,
    lora_alpha: lora.alpha,
    lora_dropout: 0,
    target_modules: [...lora.targets],
    bias: "none",
    use_rslora: lora.useRslora,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
  };
}

const MODULE_PATTERN = /^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.([a-z_]+)$/;

/**
 * A PEFT adapter (its directory, or the adapter already loaded) as LoRA weights for `config`'s model;
 * modules the model lacks are refused.
 */
export async function readLora(source: string | Adapter, config: LlamaConfig): Promise<LoraWeights> {
  const adapter = typeof source === "string" ? await loadAdapter(source) : source;
  const pairs: LoraPair[] = [];
  await using reader = await SafetensorsReader.open(adapter.file);
  for (const m of adapter.modules) {
    const match = MODULE_PATTERN.exec(m.module);
    const layer = Number(match?.[1]);
    const proj = match?.[2] as LlamaProjection;
    if (
      !match ||
      !LLAMA_PROJECTIONS.includes(proj) ||
      `base_model.model.${projectionModule(layer, proj)}` !== m.module
    ) {
      throw new LoramixError("LAYOUT", `${adapter.file}: module "${m.module}" is not a Llama projection`);
    }
    if (layer >= config.nLayer)
      throw new LoramixError("LAYOUT", `${adapter.file}: layer ${layer} but the model has ${config.nLayer}`);
    const [outFeatures, inFeatures] = projectionShape(config, proj);
    if (m.inFeatures !== inFeatures || m.outFeatures !== outFeatures) {
      throw new LoramixError(
        "LAYOUT",
        `${adapter.file}: module "${m.module}" is ${m.outFeatures}×${m.inFeatures}, the model's ${proj} is ${outFeatures}×${inFeatures}`,
      );
    }
    pairs.push({
      layer,
      proj,
      inFeatures,
      outFeatures,
      a: await reader.readF32(m.a),
      b: await reader.readF32(m.b),
    });
  }
  const { r, loraAlpha, useRslora } = adapter.config;
  const targets = [...new Set(pairs.map((p) => p.proj))];
  return { r, alpha: loraAlpha, scale: loraScaling(adapter.config), useRslora, targets, pairs };
}
