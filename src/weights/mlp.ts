import { formatError, usageError } from "../errors.js";
import { packBlob, unpackBlob } from "../util/blob.js";
import { seededRandom } from "../util/prng.js";

/** torch's LayerNorm default. */
export const LAYER_NORM_EPS = 1e-5;
/** Largest hidden width accepted from a file: H² floats must fit in memory (4000 is the paper's). */
const MAX_HIDDEN = 16384;
const MAGIC = "loramix-mlp";

/**
 * The per-scalar MLP f: R → R of SPEC §4: Linear(1,H)–LayerNorm–ReLU–Linear(H,H)–LayerNorm–ReLU–
 * Linear(H,1). Parameters live in one flat float32 array (what training optimises) in torch's order
 * and shapes (Linear weights are [out, in]); `mlpOffsets` locates each tensor.
 */
export interface ScalarMlp {
  hidden: number;
  params: Float32Array;
}

export interface MlpOffsets {
  w1: number; // [H, 1]
  b1: number;
  g1: number; // LayerNorm 1 weight
  be1: number; // LayerNorm 1 bias
  w2: number; // [H, H], [out][in]
  b2: number;
  g2: number;
  be2: number;
  w3: number; // [1, H]
  b3: number;
  total: number;
}

export function mlpOffsets(hidden: number): MlpOffsets {
  const h = hidden;
  const w1 = 0;
  const b1 = w1 + h;
  const g1 = b1 + h;
  const be1 = g1 + h;
  const w2 = be1 + h;
  const b2 = w2 + h * h;
  const g2 = b2 + h;
  const be2 = g2 + h;
  const w3 = be2 + h;
  const b3 = w3 + h;
  return { w1, b1, g1, be1, w2, b2, g2, be2, w3, b3, total: b3 + 1 };
}

export function checkHidden(hidden: number): void {
  if (!(Number.isInteger(hidden) && hidden >= 1 && hidden <= MAX_HIDDEN)) {
    throw usageError(`hidden width must be an integer from 1 to ${MAX_HIDDEN}, got ${hidden}`);
  }
}

/**
 * Seeded initialisation as torch's defaults: Linear(in, out) weight and bias ~ U(−1/√in, 1/√in)
 * (kaiming_uniform with a = √5 reduces to that bound), LayerNorm weight 1 and bias 0.
 */
export function initMlp(hidden: number, seed: number): ScalarMlp {
  checkHidden(hidden);
  const o = mlpOffsets(hidden);
  const params = new Float32Array(o.total);
  const random = seededRandom(seed);
  const uniform = (start: number, count: number, fanIn: number) => {
    const bound = 1 / Math.sqrt(fanIn);
    for (let k = start; k < start + count; k++) params[k] = (2 * random() - 1) * bound;
  };
  uniform(o.w1, hidden, 1);
  uniform(o.b1, hidden, 1);
  params.fill(1, o.g1, o.g1 + hidden);
  uniform(o.w2, hidden * hidden, hidden);
  uniform(o.b2, hidden, hidden);
  params.fill(1, o.g2, o.g2 + hidden);
  uniform(o.w3, hidden, hidden);
  uniform(o.b3, 1, hidden);
  return { hidden, params };
}

/** LayerNorm (biased variance, as torch) then ReLU, in place on `h`. */
function layerNormRelu(h: Float64Array, p: Float32Array, gamma: number, beta: number): void {
  const n = h.length;
  let mean = 0;
  for (let k = 0; k < n; k++) mean += h[k] as number;
  mean /= n;
  let v = 0;
  for (let k = 0; k < n; k++) {
    const e = (h[k] as number) - mean;
    v += e * e;
  }
  const inv = 1 / Math.sqrt(v / n + LAYER_NORM_EPS);
  for (let k = 0; k < n; k++) {
    const y = ((h[k] as number) - mean) * inv * (p[gamma + k] as number) + (p[beta + k] as number);
    h[k] = Math.max(y, 0);
  }
}

/**
 * f applied to each value of `x` in float64 arithmetic (the parameters are float32). Used at
 * inference, where a row has N values; training runs the same network through tfjs.
 */
export function mlpForward(
  mlp: ScalarMlp,
  x: ArrayLike<number>,
  out = new Float64Array(x.length),
): Float64Array {
  const { hidden: h, params: p } = mlp;
  const o = mlpOffsets(h);
  const a1 = new Float64Array(h);
  const a2 = new Float64Array(h);
  for (let s = 0; s < x.length; s++) {
    const v = x[s] as number;
    for (let k = 0; k < h; k++) a1[k] = (p[o.w1 + k] as number) * v + (p[o.b1 + k] as number);
    layerNormRelu(a1, p, o.g1, o.be1);
    for (let r = 0; r < h; r++) {
      const row = o.w2 + r * h;
      let acc = p[o.b2 + r] as number;
      for (let k = 0; k < h; k++) acc += (p[row + k] as number) * (a1[k] as number);
      a2[r] = acc;
    }
    layerNormRelu(a2, p, o.g2, o.be2);
    let y = p[o.b3] as number;
    for (let k = 0; k < h; k++) y += (p[o.w3 + k] as number) * (a2[k] as number);
    out[s] = y;
  }
  return out;
}

/** What a trained MLP carries besides its weights, so that it is used as it was trained. */
export interface MlpMetadata {
  metric: string;
  seed: number;
  epochs: number;
  learningRate: number;
  /** Bank entry ids used as training rows/candidates; the rest of the bank is the validation set. */
  trainIds: string[];
  validIds: string[];
  /** How distance rows were z-scored before f (see Z_SCORE_CONVENTION). */
  zScore: string;
  /** Cache key of the Gram matrix the loss used. */
  gramKey: string;
  trainLoss: number;
  validLoss: number | null;
  /** Loss after each epoch (training rows). */
  history: number[];
}

export interface TrainedMlp extends ScalarMlp {
  meta: MlpMetadata;
}

/** Binary form: "loramix-mlp" + u32 LE JSON length + JSON (hidden, metadata) + float32 LE params. */
export function mlpToBuffer(mlp: TrainedMlp): Buffer {
  const params = Buffer.alloc(mlp.params.length * 4);
  for (let k = 0; k < mlp.params.length; k++) params.writeFloatLE(mlp.params[k] as number, k * 4);
  return packBlob(MAGIC, { format: MAGIC, version: 1, hidden: mlp.hidden, meta: mlp.meta }, params);
}

/** Parses `mlpToBuffer` output; `source` names where the bytes came from for error messages. */
export function mlpFromBuffer(bytes: Uint8Array, source: string): TrainedMlp {
  const { header: head, payload } = unpackBlob(bytes, MAGIC, "MLP", source);
  if (head.version !== 1) throw formatError(source, `unsupported MLP version ${String(head.version)}`);
  const hidden = head.hidden;
  if (typeof hidden !== "number" || !Number.isInteger(hidden) || hidden < 1 || hidden > MAX_HIDDEN) {
    throw formatError(source, `MLP hidden width ${String(hidden)} is not an integer from 1 to ${MAX_HIDDEN}`);
  }
  const meta = head.meta as MlpMetadata | undefined;
  if (
    typeof meta !== "object" ||
    meta === null ||
    typeof meta.metric !== "string" ||
    !Array.isArray(meta.trainIds)
  ) {
    throw formatError(source, "MLP metadata is missing its metric or training ids");
  }
  const total = mlpOffsets(hidden).total;
  const paramBytes = payload.length;
  if (paramBytes !== total * 4) {
    throw formatError(
      source,
      `MLP with hidden ${hidden} needs ${total * 4} parameter bytes, found ${paramBytes}`,
    );
  }
  const params = new Float32Array(total);
  for (let k = 0; k < total; k++) params[k] = payload.readFloatLE(k * 4);
  return { hidden, params, meta };
}
