import { applyQ, householderQr, jacobiLeftSvd, type Matrix, rightVectors, zeros } from "./linalg.js";

/** One low-rank term c·B·A: `b` is [out, r] and `a` is [r, in], row-major as stored in safetensors. */
export interface LowRankTerm {
  a: Float32Array;
  b: Float32Array;
  r: number;
  coeff: number;
}

export interface LowRankSumOptions {
  terms: LowRankTerm[];
  outFeatures: number;
  inFeatures: number;
  /** Rank of the result. */
  rank: number;
  /** The output adapter's LoRA scaling s: the result satisfies s·B'·A' ≈ Σ c_j B_j A_j. */
  scale: number;
}

/**
 * Best rank-`rank` approximation (Frobenius, Eckart–Young) of ΔŴ = Σ_j c_j B_j A_j, returned as
 * LoRA factors with s·B'A' = ΔŴ_rank; the singular values are split evenly between B' and A' so
 * both keep comparable magnitudes. When the stacked rank K = Σ r_j is below both dimensions, ΔŴ
 * is never formed: with B_cat = Q_B R_B and A_catᵀ = Q_A R_A, ΔŴ = Q_B (R_B D R_Aᵀ) Q_Aᵀ and only
 * the K×K core needs an SVD. Otherwise ΔŴ is formed densely and reduced by QR first.
 */
export function truncateLowRankSum({ terms, outFeatures, inFeatures, rank, scale }: LowRankSumOptions): {
  a: Float32Array;
  b: Float32Array;
} {
  if (!(scale > 0)) throw new RangeError(`truncateLowRankSum: scale must be positive, got ${scale}`);
  const k = terms.reduce((sum, t) => sum + t.r, 0);
  const outB = new Float32Array(outFeatures * rank);
  const outA = new Float32Array(rank * inFeatures);
  if (k === 0) return { a: outA, b: outB };
  let left: Matrix; // out × ρ, columns already scaled by √(σ/s)
  let right: Matrix; // in × ρ, same scaling
  if (k < Math.min(outFeatures, inFeatures)) {
    ({ left, right } = factoredTruncation(terms, outFeatures, inFeatures, k, rank, scale));
  } else {
    ({ left, right } = denseTruncation(terms, outFeatures, inFeatures, rank, scale));
  }
  const rho = left.cols;
  for (let c = 0; c < rho; c++) {
    for (let i = 0; i < outFeatures; i++) outB[i * rank + c] = left.data[c * outFeatures + i] as number;
    for (let i = 0; i < inFeatures; i++) outA[c * inFeatures + i] = right.data[c * inFeatures + i] as number;
  }
  return { a: outA, b: outB };
}

function factoredTruncation(
  terms: LowRankTerm[],
  out: number,
  inF: number,
  k: number,
  rank: number,
  scale: number,
): { left: Matrix; right: Matrix } {
  const bCat = zeros(out, k);
  const aCatT = zeros(inF, k);
  const d = new Float64Array(k);
  let offset = 0;
  for (const t of terms) {
    for (let c = 0; c < t.r; c++) {
      const col = offset + c;
      for (let i = 0; i < out; i++) bCat.data[col * out + i] = t.b[i * t.r + c] as number;
      // A's row c is contiguous: it is column c of Aᵀ.
      for (let i = 0; i < inF; i++) aCatT.data[col * inF + i] = t.a[c * inF + i] as number;
      d[col] = t.coeff;
    }
    offset += t.r;
  }
  const qrB = householderQr(bCat);
  const qrA = householderQr(aCatT);
  const core = zeros(k, k);
  const rb = qrB.r.data;
  const ra = qrA.r.data;
  // core = R_B · diag(d) · R_Aᵀ; both R are upper triangular, so m runs from max(i, l) only.
  for (let l = 0; l < k; l++) {
    for (let i = 0; i < k; i++) {
      let sum = 0;
      for (let m = Math.max(i, l); m < k; m++)
        sum += (rb[i + m * k] as number) * (d[m] as number) * (ra[l + m * k] as number);
      core.data[i + l * k] = sum;
    }
  }
  const svd = jacobiLeftSvd(core);
  const rho = Math.min(rank, k);
  const v = rightVectors(core, svd, rho);
  const xb = zeros(k, rho);
  const xa = zeros(k, rho);
  for (let c = 0; c < rho; c++) {
    const f = Math.sqrt((svd.s[c] as number) / scale);
    for (let i = 0; i < k; i++) {
      xb.data[c * k + i] = (svd.u.data[c * k + i] as number) * f;
      xa.data[c * k + i] = (v.data[c * k + i] as number) * f;
    }
  }
  return { left: applyQ(qrB, xb), right: applyQ(qrA, xa) };
}

function denseTruncation(
  terms: LowRankTerm[],
  out: number,
  inF: number,
  rank: number,
  scale: number,
): { left: Matrix; right: Matrix } {
  // W is built column-major in whichever orientation is tall, so the QR below sees rows ≥ cols.
  const tall = out >= inF;
  const rows = tall ? out : inF;
  const cols = tall ? inF : out;
  const w = zeros(rows, cols);
  for (const t of terms) {
    for (let c = 0; c < t.r; c++) {
      for (let i = 0; i < out; i++) {
        const bi = t.coeff * (t.b[i * t.r + c] as number);
        if (bi === 0) continue;
        const arow = c * inF;
        if (tall) {
          for (let l = 0; l < inF; l++)
            w.data[i + l * out] = (w.data[i + l * out] as number) + bi * (t.a[arow + l] as number);
        } else {
          const base = i * inF;
          for (let l = 0; l < inF; l++)
            w.data[base + l] = (w.data[base + l] as number) + bi * (t.a[arow + l] as number);
        }
      }
    }
  }
  const qr = householderQr(w);
  const svd = jacobiLeftSvd(qr.r);
  const rho = Math.min(rank, cols);
  const v = rightVectors(qr.r, svd, rho);
  const xu = zeros(cols, rho);
  const xv = zeros(cols, rho);
  for (let c = 0; c < rho; c++) {
    const f = Math.sqrt((svd.s[c] as number) / scale);
    for (let i = 0; i < cols; i++) {
      xu.data[c * cols + i] = (svd.u.data[c * cols + i] as number) * f;
      xv.data[c * cols + i] = (v.data[c * cols + i] as number) * f;
    }
  }
  const big = applyQ(qr, xu); // rows × ρ
  return tall ? { left: big, right: xv } : { left: xv, right: big };
}
