import { option, usageError } from "../errors.js";
import type { ProfileSide } from "../profiles/profile.js";
import { attentionalWeights } from "./attentional.js";
import type { ScalarMlp } from "./mlp.js";
import { neuralWeights } from "./neural.js";
import { normalizedWeights } from "./normalized.js";

/**
 * The weighting methods of SPEC §4, in one list with one dispatch: generate, loo, the demo and the
 * CLI read them from here, so a new method is added in this file.
 */
export const WEIGHT_METHODS = ["attentional", "normalized", "neural"] as const;
export type WeightMethod = (typeof WEIGHT_METHODS)[number];

export interface MethodWeightOptions {
  /** Softmin temperature τ of attentional and normalized. */
  temperature?: number;
  /** The trained MLP of `neural`. */
  mlp?: ScalarMlp;
  /** The target's own entry in a bank row: kept in the normalized statistics, weight 0. */
  selfIndex?: number;
  /** mask[j] true: candidate j gets weight 0. */
  mask?: ArrayLike<boolean>;
}

/** Mixture weights (summing to 1) of the candidates at `distances` by `method`. */
export function methodWeights(
  method: WeightMethod,
  distances: Float64Array,
  { temperature = 1, mlp, selfIndex, mask }: MethodWeightOptions = {},
): Float64Array {
  switch (method) {
    case "attentional":
      return attentionalWeights(distances, { temperature, selfIndex, mask });
    case "normalized":
      return normalizedWeights(distances, { temperature, selfIndex, mask });
    case "neural":
      if (!mlp) throw usageError("neural weights need a trained MLP (loramix train-mlp)");
      return neuralWeights(distances, mlp, { selfIndex, mask });
    default:
      throw usageError(
        `unknown weighting method "${method satisfies never}" (use ${WEIGHT_METHODS.join(", ")})`,
      );
  }
}

/** The MLP of `neural` is trained on "both"-side distances (train-mlp); another side would feed it what it never saw. */
export function neuralSideError(side: ProfileSide): Error {
  const both = option("side", "both");
  return usageError(
    `the neural weighting is trained on input + output distances; use ${both.text} with it, not "${side}"`,
    [both],
  );
}
