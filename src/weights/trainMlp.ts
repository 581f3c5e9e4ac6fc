import type * as TfTypes from "@tensorflow/tfjs";
import { usageError } from "../errors.js";
import { seededRandom, shuffledIndices } from "../util/prng.js";
import type { ProgressSink } from "../util/progress.js";
import { yieldToEventLoop } from "../util/yield.js";
import { gramMixtureLoss } from "./gramLoss.js";
import { checkHidden, initMlp, LAYER_NORM_EPS, type MlpOffsets, mlpOffsets, type TrainedMlp } from "./mlp.js";
import { Z_SCORE_CONVENTION, zScoreRow } from "./normalized.js";
import { loadTfjs } from "./tfjs.js";

/** Scalars per tfjs pass: bounds activation memory (≈ 10 live m×H float32 arrays) whatever H is. */
const SCALARS_PER_CHUNK_TIMES_H = 1 << 22;

export interface TrainMlpOptions {
  /** N×N distance matrix (row = target, column = candidate), row-major, entries in `ids` order. */
  distances: Float64Array;
  /** N×N Gram matrix of the same entries' adapters, and parameters per adapter. */
  gram: Float64Array;
  params: number;
  ids: string[];
  metric: string;
  gramKey: string;
  hidden?: number;
  epochs?: number;
  seed?: number;
  learningRate?: number;
  trainFraction?: number;
  /** Called after each epoch with the training loss of the weights before that epoch's update. */
  onEpoch?: (epoch: number, trainLoss: number) => void;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/**
 * Trains the per-scalar MLP of SPEC §4: Adam (lr 1e-3, torch's betas and eps), full batch, on a
 * seeded random 80% of the entries. Each training row is z-scored over the training columns (the
 * training entries form the bank; self included in the statistics) and weights the other training
 * entries; validation rows are z-scored over the training columns as new datasets would be.
 *
 * Why tfjs and not a hand-written backward: the cost is the H×H layer (≈ 8·M·H² flops per epoch
 * for M scalars), and XNNPACK under wasm ran it at ~12 GFLOP/s (m=1024, H=4000) against ~3 for
 * our best plain-JS kernel; autodiff also spares a hand-derived LayerNorm backward. The MLP runs in
 * float32 as torch's default does; the loss and its gradient with respect to the MLP outputs are
 * computed in float64 through the Gram matrix (`gramMixtureLoss`) and fed back as the upstream
 * gradient, in chunks, so memory does not grow with M·H.
 */
export async function trainScalarMlp({
  distances,
  gram,
  params,
  ids,
  metric,
  gramKey,
  hidden = 64,
  epochs = 40,
  seed = 0,
  learningRate = 1e-3,
  trainFraction = 0.8,
  onEpoch,
  signal,
  progress,
}: TrainMlpOptions): Promise<TrainedMlp> {
  checkHidden(hidden);
  const n = ids.length;
  if (distances.length !== n * n)
    throw usageError(`distance matrix has ${distances.length} values for ${n} entries`);
  if (gram.length !== n * n) throw usageError(`Gram matrix has ${gram.length} values for ${n} entries`);
  if (!(Number.isInteger(epochs) && epochs >= 0))
    throw usageError(`epochs must be a non-negative integer, got ${epochs}`);
  if (!Number.isInteger(seed)) throw usageError(`seed must be an integer, got ${seed}`);
  if (!(trainFraction > 0 && trainFraction <= 1))
    throw usageError(`train fraction must be in (0, 1], got ${trainFraction}`);
  const nTrain = Math.round(n * trainFraction);
  if (nTrain < 3)
    throw usageError(`training the MLP needs at least 3 training entries, the bank gives ${nTrain}`);

  // The split has its own stream so that changing H (the init's draws) keeps the same split.
  const order = shuffledIndices(n, seededRandom(seed ^ 0x5eed5eed));
  const train = order.slice(0, nTrain).sort((a, b) => a - b);
  const valid = order.slice(nTrain).sort((a, b) => a - b);
  const trainInputs = zScoredRows(distances, n, train, train);
  const validInputs = zScoredRows(distances, n, valid, train);

  const tf = await loadTfjs();
  const init = initMlp(hidden, seed);
  const o = mlpOffsets(hidden);
  const vars = toVariables(tf, init.params, hidden, o);
  const chunk = Math.max(64, Math.floor(SCALARS_PER_CHUNK_TIMES_H / hidden));
  const optimizer = tf.train.adam(learningRate, 0.9, 0.999, 1e-8);
  const lossOf = (rows: number[], z: Float32Array, gradient: boolean) =>
    gramMixtureLoss({
      gram,
      n,
      params,
      rows,
      candidates: train,
      logits: evaluate(tf, vars, z, chunk),
      gradient,
    });
  const history: number[] = [];
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      await yieldToEventLoop(signal);
      const { loss, gradient } = lossOf(train, trainInputs, true);
      const grads = await backward(tf, vars, trainInputs, gradient as Float64Array, chunk, signal);
      // Gradients are keyed by variable name, which is how Adam finds the variable to update.
      optimizer.applyGradients(grads as Record<string, TfTypes.Variable>);
      for (const g of Object.values(grads)) g.dispose();
      history.push(loss);
      onEpoch?.(epoch, loss);
      progress?.({
        phase: "train-mlp",
        done: epoch,
        total: epochs,
        unit: "epochs",
        detail: `loss ${loss.toExponential(4)}`,
      });
    }
    const trainLoss = lossOf(train, trainInputs, false).loss;
    const validLoss = valid.length > 0 ? lossOf(valid, validInputs, false).loss : null;
    return {
      hidden,
      params: fromVariables(vars, hidden, o),
      meta: {
        metric,
        seed,
        epochs,
        learningRate,
        trainIds: train.map((i) => ids[i] as string),
        validIds: valid.map((i) => ids[i] as string),
        zScore: `${Z_SCORE_CONVENTION}; training rows over the training entries' columns`,
        gramKey,
        trainLoss,
        validLoss,
        history,
      },
    };
  } finally {
    optimizer.dispose();
    for (const v of Object.values(vars)) v.dispose();
  }
}

/** Rows `rows` of the distance matrix restricted to `columns`, z-scored, as float32 MLP inputs. */
function zScoredRows(distances: Float64Array, n: number, rows: number[], columns: number[]): Float32Array {
  const out = new Float32Array(rows.length * columns.length);
  const row = new Float64Array(columns.length);
  rows.forEach((i, r) => {
    columns.forEach((j, c) => {
      row[c] = distances[i * n + j] as number;
    });
    out.set(zScoreRow(row).z, r * columns.length);
  });
  return out;
}

type Vars = Record<"w1" | "b1" | "g1" | "be1" | "w2" | "b2" | "g2" | "be2" | "w3" | "b3", TfTypes.Variable>;

function toVariables(tf: typeof TfTypes, p: Float32Array, h: number, o: MlpOffsets): Vars {
  // tfjs multiplies activations on the left, so the H×H weight is kept as [in, out] (torch: [out, in]).
  const w2t = new Float32Array(h * h);
  for (let r = 0; r < h; r++) for (let k = 0; k < h; k++) w2t[k * h + r] = p[o.w2 + r * h + k] as number;
  const v = (data: Float32Array, shape: number[]) => tf.variable(tf.tensor(data, shape));
  return {
    w1: v(p.slice(o.w1, o.w1 + h), [1, h]),
    b1: v(p.slice(o.b1, o.b1 + h), [h]),
    g1: v(p.slice(o.g1, o.g1 + h), [h]),
    be1: v(p.slice(o.be1, o.be1 + h), [h]),
    w2: v(w2t, [h, h]),
    b2: v(p.slice(o.b2, o.b2 + h), [h]),
    g2: v(p.slice(o.g2, o.g2 + h), [h]),
    be2: v(p.slice(o.be2, o.be2 + h), [h]),
    w3: v(p.slice(o.w3, o.w3 + h), [h, 1]),
    b3: v(p.slice(o.b3, o.b3 + 1), [1]),
  };
}

function fromVariables(vars: Vars, h: number, o: MlpOffsets): Float32Array {
  const p = new Float32Array(o.total);
  const put = (name: keyof Vars, at: number) => p.set(vars[name].dataSync() as Float32Array, at);
  put("w1", o.w1);
  put("b1", o.b1);
  put("g1", o.g1);
  put("be1", o.be1);
  const w2t = vars.w2.dataSync() as Float32Array;
  for (let r = 0; r < h; r++) for (let k = 0; k < h; k++) p[o.w2 + r * h + k] = w2t[k * h + r] as number;
  put("b2", o.b2);
  put("g2", o.g2);
  put("be2", o.be2);
  put("w3", o.w3);
  put("b3", o.b3);
  return p;
}

/**
 * a·w whose backward transposes explicitly: tfjs-wasm's matMul with a transpose flag (what the
 * built-in gradient uses) measured 1.2–1.4 GFLOP/s at m=1024, H=4000, against 12 GFLOP/s for a
 * transpose followed by a plain matMul.
 */
function fastMatMul(tf: typeof TfTypes): (a: TfTypes.Tensor, w: TfTypes.Tensor) => TfTypes.Tensor2D {
  const f = tf.customGrad<TfTypes.Tensor2D>((...inputs: (TfTypes.Tensor | TfTypes.GradSaveFunc)[]) => {
    const [a, w, save] = inputs as [TfTypes.Tensor2D, TfTypes.Tensor2D, TfTypes.GradSaveFunc];
    save([a, w]);
    return {
      value: tf.matMul(a, w) as TfTypes.Tensor2D,
      gradFunc: (dy: TfTypes.Tensor2D, saved: TfTypes.Tensor[]) => {
        const [sa, sw] = saved as [TfTypes.Tensor2D, TfTypes.Tensor2D];
        return [tf.matMul(dy, tf.transpose(sw)), tf.matMul(tf.transpose(sa), dy)];
      },
    };
  });
  return (a, w) => f(a, w);
}

function forward(tf: typeof TfTypes, v: Vars, x: TfTypes.Tensor2D): TfTypes.Tensor1D {
  const matMul = fastMatMul(tf);
  const layerNorm = (h: TfTypes.Tensor2D, g: TfTypes.Variable, b: TfTypes.Variable) => {
    const { mean, variance } = tf.moments(h, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, LAYER_NORM_EPS))), g), b);
  };
  const a1 = tf.relu(layerNorm(tf.add(tf.mul(x, v.w1), v.b1), v.g1, v.be1)) as TfTypes.Tensor2D;
  const a2 = tf.relu(layerNorm(tf.add(matMul(a1, v.w2), v.b2), v.g2, v.be2)) as TfTypes.Tensor2D;
  return tf.reshape(tf.add(matMul(a2, v.w3), v.b3), [-1]);
}

/** f over every input, chunked; float64 out for the loss. */
function evaluate(tf: typeof TfTypes, v: Vars, z: Float32Array, chunk: number): Float64Array {
  const out = new Float64Array(z.length);
  for (let s = 0; s < z.length; s += chunk) {
    const part = z.subarray(s, Math.min(z.length, s + chunk));
    const y = tf.tidy(() => forward(tf, v, tf.tensor2d(part, [part.length, 1])));
    out.set(y.dataSync(), s);
    y.dispose();
  }
  return out;
}

/** Σ over chunks of d(Σ f(z)·upstream)/dθ: the vector-Jacobian product of the whole batch. */
async function backward(
  tf: typeof TfTypes,
  v: Vars,
  z: Float32Array,
  upstream: Float64Array,
  chunk: number,
  signal: AbortSignal | undefined,
): Promise<TfTypes.NamedTensorMap> {
  let total: TfTypes.NamedTensorMap | undefined;
  for (let s = 0; s < z.length; s += chunk) {
    await yieldToEventLoop(signal);
    const end = Math.min(z.length, s + chunk);
    const x = tf.tensor2d(z.subarray(s, end), [end - s, 1]);
    const dy = tf.tensor1d(Float32Array.from(upstream.subarray(s, end)));
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(forward(tf, v, x), dy)) as TfTypes.Scalar);
    value.dispose();
    x.dispose();
    dy.dispose();
    if (!total) {
      total = grads;
    } else {
      for (const [name, g] of Object.entries(grads)) {
        const prev = total[name] as TfTypes.Tensor;
        total[name] = tf.add(prev, g);
        prev.dispose();
        g.dispose();
      }
    }
  }
  return total ?? {};
}
