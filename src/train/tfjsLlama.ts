import type * as TfModule from "@tensorflow/tfjs";
import {
  LLAMA_PROJECTIONS,
  type LlamaConfig,
  type LlamaProjection,
  projectionShape,
} from "../formats/llamaConfig.js";
import { loadTfjs } from "../weights/tfjs.js";
import type { Batch } from "./examples.js";
import type { LlamaWeights } from "./llamaWeights.js";
import type { LoraWeights } from "./lora.js";

type Tf = typeof TfModule;
type Tensor = TfModule.Tensor;

/** Added to the scores of keys a query may not see; finite, so a row of pads softmaxes to uniform, not NaN. */
const MASKED = -1e9;

/** LoRA factors as tensors, in the order of `LoraWeights.pairs`: [A0, B0, A1, B1, ...]. */
export interface LoraBinding {
  scale: number;
  index: Map<string, number>;
  tensors: Tensor[];
}

/** The tensors a batch needs besides the weights; built once, disposed by the caller. */
export interface BatchInputs {
  ids: Tensor;
  /** [B, T, 1, headDim] rotary tables at each row's own positions (0 at the first real token). */
  cos: Tensor;
  sin: Tensor;
  /** [B, 1, T, T] additive causal + padding mask. */
  mask: Tensor;
}

interface LayerTensors {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  /** x ↦ x·Wᵀ with its input gradient dy·W; the frozen W itself gets none. */
  proj: Record<LlamaProjection, (x: Tensor) => Tensor>;
  weights: Tensor[];
}

/**
 * The Hugging Face Llama forward pass in tfjs (wasm backend): embedding, RMSNorm, rotary embeddings
 * as HF's rotate_half, grouped-query causal attention, SiLU-gated MLP, final norm, output head, with
 * optional LoRA on any projection: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ. The base weights are constants; only
 * the LoRA tensors passed in can receive gradients.
 */
export class TfjsLlama {
  private constructor(
    readonly tf: Tf,
    readonly config: LlamaConfig,
    private readonly embed: Tensor,
    /** [hidden, vocab]: tfjs-wasm multiplies fast only without transpose flags. */
    private readonly lmHeadT: Tensor,
    private readonly norm: Tensor,
    private readonly layers: LayerTensors[],
    private readonly lmHead: Tensor,
  ) {}

  static async fromWeights(weights: LlamaWeights): Promise<TfjsLlama> {
    const tf = await loadTfjs();
    const { config } = weights;
    const embed = tf.tensor2d(weights.embed, [config.vocabSize, config.nEmbd]);
    const lmHead =
      weights.lmHead === weights.embed
        ? embed
        : tf.tensor2d(weights.lmHead, [config.vocabSize, config.nEmbd]);
    const layers = weights.layers.map((l) => {
      const proj = {} as Record<LlamaProjection, (x: Tensor) => Tensor>;
      const tensors: Tensor[] = [];
      for (const p of LLAMA_PROJECTIONS) {
        const w = tf.tensor2d(l.proj[p], projectionShape(config, p));
        const wt = tf.transpose(w);
        tensors.push(w, wt);
        proj[p] = tf.customGrad((x) => ({
          value: tf.matMul(x as Tensor, wt),
          gradFunc: (dy: Tensor) => tf.matMul(dy, w),
        })) as (x: Tensor) => Tensor;
      }
      const inputNorm = tf.tensor1d(l.inputNorm);
      const postAttentionNorm = tf.tensor1d(l.postAttentionNorm);
      return { inputNorm, postAttentionNorm, proj, weights: [...tensors, inputNorm, postAttentionNorm] };
    });
    const lmHeadT = tf.transpose(lmHead);
    return new TfjsLlama(tf, config, embed, lmHeadT, tf.tensor1d(weights.norm), layers, lmHead);
  }

  /** LoRA weights as tensors (the caller disposes them, or passes new ones each optimizer step). */
  bindLora(lora: LoraWeights): LoraBinding {
    const tf = this.tf;
    const index = new Map<string, number>();
    const tensors: Tensor[] = [];
    for (const p of lora.pairs) {
      index.set(`${p.layer}.${p.proj}`, tensors.length);
      tensors.push(tf.tensor2d(p.a, [lora.r, p.inFeatures]), tf.tensor2d(p.b, [p.outFeatures, lora.r]));
    }
    return { scale: lora.scale, index, tensors };
  }

  batchInputs(batch: Batch): BatchInputs {
    const tf = this.tf;
    const { rows, length: T, pads } = batch;
    const hd = this.config.headDim;
    const half = hd / 2;
    const invFreq = new Float64Array(half);
    for (let i = 0; i < half; i++) invFreq[i] = this.config.ropeTheta ** (-(2 * i) / hd);
    const cos = new Float32Array(rows * T * hd);
    const sin = new Float32Array(rows * T * hd);
    const mask = new Float32Array(rows * T * T).fill(MASKED);
    for (let b = 0; b < rows; b++) {
      const pad = pads[b] as number;
      for (let t = pad; t < T; t++) {
        const pos = t - pad;
        const o = (b * T + t) * hd;
        for (let i = 0; i < half; i++) {
          const angle = pos * (invFreq[i] as number);
          cos[o + i] = cos[o + i + half] = Math.cos(angle);
          sin[o + i] = sin[o + i + half] = Math.sin(angle);
        }
        mask.fill(0, (b * T + t) * T + pad, (b * T + t) * T + t + 1);
      }
    }
    return {
      ids: tf.tensor1d(batch.ids, "int32"),
      cos: tf.tensor4d(cos, [rows, T, 1, hd]),
      sin: tf.tensor4d(sin, [rows, T, 1, hd]),
      mask: tf.tensor4d(mask, [rows, 1, T, T]),
    };
  }

  /**
   * Logits [B, count, vocab] at columns start..start+count−1 of the batch. Earlier layers run on every
   * column (their keys and values are needed); the last layer only on the requested ones.
   */
  logits(inputs: BatchInputs, lora: LoraBinding | null, start: number, count: number): Tensor {
    const tf = this.tf;
    const [B, T] = inputs.cos.shape as [number, number];
    let h = tf.gather(this.embed, inputs.ids);
    this.layers.forEach((layer, l) => {
      const last = l === this.layers.length - 1;
      h = this.block(h, l, layer, inputs, lora, B, T, last ? start : 0, last ? count : T);
    });
    const logits = mm(tf, this.rmsNorm(h, this.norm), this.lmHeadT);
    return tf.reshape(logits, [B, count, this.config.vocabSize]);
  }

  private rmsNorm(x: Tensor, weight: Tensor): Tensor {
    const tf = this.tf;
    const meanSquare = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, this.config.rmsNormEps))), weight);
  }

  private linear(x: Tensor, layer: number, proj: LlamaProjection, lora: LoraBinding | null): Tensor {
    const tf = this.tf;
    const base = (this.layers[layer] as LayerTensors).proj[proj](x);
    const i = lora?.index.get(`${layer}.${proj}`);
    if (lora === null || i === undefined) return base;
    return tf.add(
      base,
      loraDelta(tf, x, lora.tensors[i] as Tensor, lora.tensors[i + 1] as Tensor, lora.scale),
    );
  }

  /** HF apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, x [B, T, heads, headDim]. */
  private rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const tf = this.tf;
    const [B, T, n, hd] = x.shape as [number, number, number, number];
    const half = hd / 2;
    const x1 = tf.slice(x, [0, 0, 0, 0], [B, T, n, half]);
    const x2 = tf.slice(x, [0, 0, 0, half], [B, T, n, half]);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], 3), sin));
  }

  /** One decoder layer on hidden [B·T, H]; returns [B·count, H] for columns start..start+count−1. */
  private block(
    h: Tensor,
    l: number,
    w: LayerTensors,
    inputs: BatchInputs,
    lora: LoraBinding | null,
    B: number,
    T: number,
    start: number,
    count: number,
  ): Tensor {
    const tf = this.tf;
    const { nEmbd: H, nHead, nHeadKv, headDim: hd } = this.config;
    const rep = nHead / nHeadKv;
    const x = this.rmsNorm(h, w.inputNorm);
    const windowed = start !== 0 || count !== T;
    const pick = (t: Tensor, width: number) =>
      windowed
        ? tf.reshape(tf.slice(tf.reshape(t, [B, T, width]), [0, start, 0], [B, count, width]), [
            B * count,
            width,
          ])
        : t;
    const cos = windowed ? tf.slice(inputs.cos, [0, start, 0, 0], [B, count, 1, hd]) : inputs.cos;
    const sin = windowed ? tf.slice(inputs.sin, [0, start, 0, 0], [B, count, 1, hd]) : inputs.sin;
    const mask = windowed ? tf.slice(inputs.mask, [0, 0, start, 0], [B, 1, count, T]) : inputs.mask;

    const keys = this.rope(
      tf.reshape(this.linear(x, l, "k_proj", lora), [B, T, nHeadKv, hd]),
      inputs.cos,
      inputs.sin,
    );
    const k = tf.reshape(tf.transpose(keys, [0, 2, 3, 1]), [B * nHeadKv, hd, T]);
    const values = tf.reshape(this.linear(x, l, "v_proj", lora), [B, T, nHeadKv, hd]);
    const v = tf.reshape(tf.transpose(values, [0, 2, 1, 3]), [B * nHeadKv, T, hd]);
    // Query heads kv·rep .. kv·rep + rep − 1 share key/value head kv (HF repeat_kv): grouping them
    // as [B·kvHeads, rep·count, hd] multiplies each group by its keys without copying them rep times.
    const qRaw = tf.mul(this.linear(pick(x, H), l, "q_proj", lora), 1 / Math.sqrt(hd));
    const q = this.rope(tf.reshape(qRaw, [B, count, nHead, hd]), cos, sin);
    const qGrouped = tf.reshape(tf.transpose(q, [0, 2, 1, 3]), [B * nHeadKv, rep * count, hd]);
    const scores = tf.add(tf.reshape(bmm(tf, qGrouped, k), [B, nHead, count, T]), mask);
    const probs = tf.reshape(tf.softmax(scores), [B * nHeadKv, rep * count, T]);
    const context = tf.reshape(
      tf.transpose(tf.reshape(bmm(tf, probs, v), [B, nHead, count, hd]), [0, 2, 1, 3]),
      [B * count, nHead * hd],
    );
    const h1 = tf.add(pick(h, H), this.linear(context, l, "o_proj", lora));

    const y = this.rmsNorm(h1, w.postAttentionNorm);
    const gate = this.linear(y, l, "gate_proj", lora);
    const up = this.linear(y, l, "up_proj", lora);
    const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
    return tf.add(h1, this.linear(act, l, "down_proj", lora));
  }

  /**
   * Summed cross-entropy (nats) of each row's output tokens, [B], and its tensors-only mean over
   * all output tokens of the batch (the training loss). Positions before a row's output are masked.
   */
  outputLoss(inputs: BatchInputs, batch: Batch, lora: LoraBinding | null): { perRow: Tensor; mean: Tensor } {
    const tf = this.tf;
    const { rows, length: T, maxTargets: m, targets } = batch;
    const start = T - 1 - m;
    const labels = new Int32Array(rows * m);
    const weights = new Float32Array(rows * m);
    let count = 0;
    for (let b = 0; b < rows; b++) {
      const n = targets[b] as number;
      for (let j = m - n; j < m; j++) {
        labels[b * m + j] = batch.ids[b * T + start + j + 1] as number;
        weights[b * m + j] = 1;
      }
      count += n;
    }
    const logits = this.logits(inputs, lora, start, m);
    const logProbs = tf.logSoftmax(tf.reshape(logits, [rows * m, this.config.vocabSize]));
    const picked = tf.sum(
      tf.mul(logProbs, tf.oneHot(tf.tensor1d(labels, "int32"), this.config.vocabSize)),
      -1,
    );
    const perRow = tf.neg(tf.sum(tf.reshape(tf.mul(picked, tf.tensor1d(weights)), [rows, m]), -1));
    return { perRow, mean: tf.div(tf.sum(perRow), count) };
  }

  dispose(): void {
    const all = new Set<Tensor>([this.embed, this.lmHead, this.lmHeadT, this.norm]);
    for (const l of this.layers) for (const t of l.weights) all.add(t);
    this.tf.dispose([...all]);
  }
}

/*
 * tfjs-wasm runs a matMul on XNNPACK only when it is 2-D without transpose flags; batched or
 * transposed products take a scalar loop 3–10× slower, and tfjs's own matMul gradients use the
 * flags. These helpers keep forward and backward on the fast path (transposes are cheap copies).
 */

/** a [n, k] · b [k, m], both operands differentiable. */
function mm(tf: Tf, a: Tensor, b: Tensor): Tensor {
  const f = tf.customGrad((x, y, save) => {
    (save as (t: Tensor[]) => void)([x as Tensor, y as Tensor]);
    return {
      value: tf.matMul(x as Tensor, y as Tensor),
      gradFunc: (dy: Tensor, [sx, sy]: Tensor[]) => [
        tf.matMul(dy, tf.transpose(sy as Tensor)),
        tf.matMul(tf.transpose(sx as Tensor), dy),
      ],
    };
  }) as (x: Tensor, y: Tensor) => Tensor;
  return f(a, b);
}

/** Batched a [n, p, q] · b [n, q, r]; the gradient uses explicit transposes, never the flags. */
function bmm(tf: Tf, a: Tensor, b: Tensor): Tensor {
  const f = tf.customGrad((x, y, save) => {
    (save as (t: Tensor[]) => void)([x as Tensor, y as Tensor]);
    return {
      value: tf.matMul(x as Tensor, y as Tensor),
      gradFunc: (dy: Tensor, [sx, sy]: Tensor[]) => [
        tf.matMul(dy, tf.transpose(sy as Tensor, [0, 2, 1])),
        tf.matMul(tf.transpose(sx as Tensor, [0, 2, 1]), dy),
      ],
    };
  }) as (x: Tensor, y: Tensor) => Tensor;
  return f(a, b);
}

/** s·(x·Aᵀ)·Bᵀ with A [r, in], B [out, r], differentiable in x, A and B. */
function loraDelta(tf: Tf, x: Tensor, a: Tensor, b: Tensor, scale: number): Tensor {
  const f = tf.customGrad((xi, ai, bi, save) => {
    const u = tf.matMul(xi as Tensor, tf.transpose(ai as Tensor));
    (save as (t: Tensor[]) => void)([xi as Tensor, ai as Tensor, bi as Tensor, u]);
    return {
      value: tf.mul(tf.matMul(u, tf.transpose(bi as Tensor)), scale),
      gradFunc: (dy: Tensor, [sx, sa, sb, su]: Tensor[]) => {
        const g = tf.mul(dy, scale);
        const du = tf.matMul(g, sb as Tensor);
        return [
          tf.matMul(du, sa as Tensor),
          tf.matMul(tf.transpose(du), sx as Tensor),
          tf.matMul(tf.transpose(g), su as Tensor),
        ];
      },
    };
  }) as (x: Tensor, a: Tensor, b: Tensor) => Tensor;
  return f(x, a, b);
}
