export interface AdamWOptions {
  lr: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

/**
 * AdamW as torch.optim.AdamW (decoupled weight decay: p ← p − lr·λ·p, then the bias-corrected Adam
 * step), over flat float32 parameters with float64 moments. The LoRA factors are ~10⁴ numbers, so the
 * update runs on the CPU side, outside tfjs, where it is exact and easy to check.
 */
export class AdamW {
  readonly #m: Float64Array[];
  readonly #v: Float64Array[];
  #t = 0;

  constructor(
    private readonly params: Float32Array[],
    private readonly options: AdamWOptions,
  ) {
    this.#m = params.map((p) => new Float64Array(p.length));
    this.#v = params.map((p) => new Float64Array(p.length));
  }

  /** One update with `grads` (same shapes as the parameters), at learning rate `lr` (default: the option). */
  step(grads: ArrayLike<number>[], lr = this.options.lr): void {
    const { weightDecay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 } = this.options;
    this.#t++;
    const c1 = 1 - beta1 ** this.#t;
    const c2 = 1 - beta2 ** this.#t;
    this.params.forEach((p, k) => {
      const g = grads[k] as ArrayLike<number>;
      const m = this.#m[k] as Float64Array;
      const v = this.#v[k] as Float64Array;
      if (g.length !== p.length) throw new RangeError(`gradient ${k} has ${g.length} values for ${p.length}`);
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] as number;
        const mi = beta1 * (m[i] as number) + (1 - beta1) * gi;
        const vi = beta2 * (v[i] as number) + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const decayed = (p[i] as number) * (1 - lr * weightDecay);
        p[i] = decayed - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
      }
    });
  }
}

/** Scales gradients in place so that their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGlobalNorm(grads: Float32Array[], maxNorm: number): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += (g[i] as number) ** 2;
  const norm = Math.sqrt(sum);
  if (norm > maxNorm) {
    const f = maxNorm / (norm + 1e-6);
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) * f;
  }
  return norm;
}
