import { adapterBaseDifferences, resolveBaseModel } from "../bank/baseModel.js";
import type { Bank, BankEntry } from "../bank/store.js";
import { LoramixError } from "../errors.js";
import type { ModelInfo } from "../formats/modelInfo.js";
import { loadAdapter } from "../formats/peft.js";

/**
 * Refuses, before any scoring, a base model the bank's adapters were not made for: a model of
 * another architecture, of other weight shapes (embedding size, layers, attention heads), or with
 * a vocabulary other than the bank's base model's. Both are named.
 */
export async function checkModelFitsBank(
  bank: Bank,
  entries: readonly BankEntry[],
  model: ModelInfo,
): Promise<void> {
  const base = bank.baseModel ?? "(no base model recorded)";
  const made = `the bank's adapters were made for ${base}`;
  if (model.dims === null) {
    throw new LoramixError(
      "LAYOUT",
      `${model.path}: a "${model.architecture}" model whose Llama weight shapes its header does not give; ${made}, LoRAs of a Llama-architecture model`,
    );
  }
  const first = entries[0];
  if (first?.adapterPath) {
    const { modules } = await loadAdapter(first.adapterPath);
    const differences = adapterBaseDifferences(modules, { name: model.path, dims: model.dims });
    if (differences.length > 0)
      throw new LoramixError(
        "LAYOUT",
        `${model.path}: does not fit the bank's adapters (${made}): ${differences.join("; ")}`,
      );
  }
  if (bank.baseModel === null) return;
  const known = await resolveBaseModel(bank.baseModel).catch(() => null);
  if (known?.dims && known.dims.vocabSize !== model.dims.vocabSize)
    throw new LoramixError(
      "LAYOUT",
      `${model.path}: a vocabulary of ${model.dims.vocabSize} tokens, but ${made}, whose vocabulary has ${known.dims.vocabSize}`,
    );
}
