import type { BankEntry } from "../bank/store.js";
import type { DatasetRecord } from "../datasets/record.js";
import { LoramixError } from "../errors.js";
import { loadAdapter } from "../formats/peft.js";
import { type MixResult, mixAdapters } from "../merge/mixAdapters.js";
import { type UpdateNorm, updateNormRatio } from "../merge/updateNorm.js";
import type { ProgressSink } from "../util/progress.js";
import { type FinetuneRecord, mixAndFinetune } from "./finetune.js";
import type { GeneratePlan } from "./plan.js";
import type { AdapterRecord } from "./record.js";

export interface Written {
  mix: MixResult<AdapterRecord>;
  /** The fine-tuning of the mix on the train records, when it ran. */
  finetune?: FinetuneRecord;
  notes: string[];
}

/**
 * The last step of generate: the weights mixed into `plan.out` with their loramix.json, or, when
 * the plan fine-tunes, mixed into a scratch folder and fine-tuned into `plan.out`: either way one
 * atomic write, so an interrupted run leaves no output.
 */
export async function writeAdapter(
  plan: GeneratePlan,
  {
    entries,
    weights,
    record,
    baseModel,
    train,
    signal,
    progress,
  }: {
    entries: readonly BankEntry[];
    weights: Float64Array;
    record: AdapterRecord;
    /** The bank's base model, named in adapter_config.json so that PEFT finds it. */
    baseModel: string | null;
    train: DatasetRecord[] | null;
    signal?: AbortSignal;
    progress?: ProgressSink;
  },
): Promise<Written> {
  const mixTo = (dir: string) =>
    mixAdapters({
      adapters: entries.map((e) => e.adapterPath as string),
      weights: [...weights],
      mode: plan.merge,
      out: dir,
      record,
      ...(baseModel !== null ? { baseModel } : {}),
      signal,
      progress,
    });
  const notes: string[] = [];
  let written: Written;
  // resolvePlan gives steps only for a model the trainer runs, so without train records the target is a profile.
  if (plan.finetune > 0 && plan.scoring !== null && train !== null) {
    const { mix, finetune } = await mixAndFinetune(mixTo, {
      model: plan.scoring.model as string,
      records: train,
      steps: plan.finetune,
      rule: plan.scoring.rule,
      out: plan.out,
      signal,
      progress,
    });
    notes.push(
      `fine-tune: ${finetune.steps} training steps on ${finetune.examples} train records lowered the batch loss from ${finetune.firstLoss.toFixed(4)} to ${finetune.finalLoss.toFixed(4)} (${finetune.seconds.toFixed(1)} s)`,
    );
    written = { mix, finetune, notes };
  } else {
    if (plan.finetune > 0) notes.push("not fine-tuned: a profile has no train records to fine-tune on");
    written = { mix: await mixTo(plan.out), notes };
  }
  const rank = written.mix.rank;
  if (rank > VLLM_MAX_LORA_RANK)
    notes.push(
      `the adapter has rank ${rank}: vLLM refuses LoRAs above its --max-lora-rank (default ${VLLM_MAX_LORA_RANK}); start it with --max-lora-rank ${[32, 64, 128, 256, 320, 512].find((r) => r >= rank) ?? rank}`,
    );
  return written;
}

/**
 * vLLM's default `--max-lora-rank`; LoRAConfig.__post_init__ (vllm/config/lora.py) accepts
 * `possible_max_ranks = (8, 16, 32, 64, 128, 256, 320, 512)`, hence the suggestion above.
 */
const VLLM_MAX_LORA_RANK = 16;

/** The update norm ratio of the mix, or why it was not computed. */
export async function mixUpdateNorm(
  entries: readonly BankEntry[],
  weights: Float64Array,
  signal: AbortSignal | undefined,
): Promise<UpdateNorm> {
  const used = entries.flatMap((e, j) =>
    (weights[j] as number) !== 0 ? [{ path: e.adapterPath as string, w: weights[j] as number }] : [],
  );
  try {
    const adapters = await Promise.all(used.map((u) => loadAdapter(u.path)));
    return await updateNormRatio(
      adapters,
      used.map((u) => u.w),
      { signal },
    );
  } catch (error) {
    if (error instanceof LoramixError && error.code === "LAYOUT")
      return { ratio: null, skipped: "the contributors' modules differ" };
    throw error;
  }
}
