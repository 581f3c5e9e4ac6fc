/**
 * The small dense linear algebra the mixing modes need, in float64: a Householder QR of a tall
 * matrix and a one-sided Jacobi SVD. Matrices are column-major because both algorithms work on
 * whole columns (dot products and updates over contiguous memory).
 */

/** Dense column-major matrix: element (i, j) is `data[i + j * rows]`. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function zeros(rows: number, cols: number): Matrix {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

/**
 * Householder QR of a tall matrix (rows ≥ cols), kept in compact form: the reflectors stay in the
 * factored matrix, so applying Q to a few columns costs O(rows·cols·c) instead of forming Q.
 */
export interface HouseholderQr {
  rows: number;
  cols: number;
  /** Column k holds the reflector v_k in rows k..rows-1 (zeros above), with H_k = I − β_k v_k v_kᵀ. */
  v: Float64Array;
  beta: Float64Array;
  /** Upper-triangular cols × cols factor. */
  r: Matrix;
}

/** Factors `m = Q·R` (m is not modified). A zero column gives an identity reflector and R_kk = 0. */
export function householderQr(m: Matrix): HouseholderQr {
  const { rows, cols } = m;
  if (rows < cols) throw new RangeError(`householderQr needs rows ≥ cols, got ${rows}×${cols}`);
  const a = Float64Array.from(m.data);
  const beta = new Float64Array(cols);
  const r = zeros(cols, cols);
  for (let k = 0; k < cols; k++) {
    const ck = k * rows;
    let norm2 = 0;
    for (let i = k; i < rows; i++) {
      const x = a[ck + i] as number;
      norm2 += x * x;
    }
    const norm = Math.sqrt(norm2);
    const x0 = a[ck + k] as number;
    if (norm === 0) {
      for (let i = 0; i < k; i++) r.data[i + k * cols] = a[ck + i] as number;
      for (let i = k; i < rows; i++) a[ck + i] = 0;
      continue;
    }
    // The sign choice avoids cancellation in v_0 = x_0 − alpha.
    const alpha = x0 >= 0 ? -norm : norm;
    a[ck + k] = x0 - alpha;
    const vnorm2 = norm2 - x0 * x0 + (x0 - alpha) * (x0 - alpha);
    const b = 2 / vnorm2;
    beta[k] = b;
    for (let j = k + 1; j < cols; j++) {
      const cj = j * rows;
      let dot = 0;
      for (let i = k; i < rows; i++) dot += (a[ck + i] as number) * (a[cj + i] as number);
      const f = b * dot;
      if (f === 0) continue;
      for (let i = k; i < rows; i++) a[cj + i] = (a[cj + i] as number) - f * (a[ck + i] as number);
    }
    for (let i = 0; i < k; i++) r.data[i + k * cols] = a[ck + i] as number;
    r.data[k + k * cols] = alpha;
    for (let i = 0; i < k; i++) a[ck + i] = 0;
  }
  return { rows, cols, v: a, beta, r };
}

/** Q·X for X of shape cols × c (the thin Q, rows × cols); returns rows × c. */
export function applyQ(qr: HouseholderQr, x: Matrix): Matrix {
  const { rows, cols, v, beta } = qr;
  if (x.rows !== cols) throw new RangeError(`applyQ: X has ${x.rows} rows, Q has ${cols} columns`);
  const out = zeros(rows, x.cols);
  for (let j = 0; j < x.cols; j++) out.data.set(x.data.subarray(j * cols, (j + 1) * cols), j * rows);
  // Q = H_0 H_1 ... H_{n-1}: the last reflector acts first.
  for (let k = cols - 1; k >= 0; k--) {
    const b = beta[k] as number;
    if (b === 0) continue;
    const ck = k * rows;
    for (let j = 0; j < x.cols; j++) {
      const cj = j * rows;
      let dot = 0;
      for (let i = k; i < rows; i++) dot += (v[ck + i] as number) * (out.data[cj + i] as number);
      const f = b * dot;
      if (f === 0) continue;
      for (let i = k; i < rows; i++)
        out.data[cj + i] = (out.data[cj + i] as number) - f * (v[ck + i] as number);
    }
  }
  return out;
}

export interface Svd {
  /** rows × n left singular vectors (a column is zero where its singular value is zero). */
  u: Matrix;
  /** n singular values, descending. */
  s: Float64Array;
  /** n × n right singular vectors. */
  v: Matrix;
}

const JACOBI_MAX_SWEEPS = 80;

/**
 * Thin SVD of m (rows ≥ cols) by one-sided Jacobi (Hestenes): plane rotations orthogonalise the
 * columns of m·V until every pair is orthogonal to working precision; then σ_j are the column
 * norms. Accurate to relative precision even for small singular values.
 */
export function jacobiSvd(m: Matrix): Svd {
  return hestenes(m, true) as Svd;
}

/**
 * Singular values and left vectors only. Skipping the accumulation of V saves about 40% of the
 * work; callers that need a few right vectors get them as v_j = mᵀu_j / σ_j (see rightVectors).
 */
export function jacobiLeftSvd(m: Matrix): Omit<Svd, "v"> {
  return hestenes(m, false);
}

/** The first `count` right singular vectors from the left ones: v_j = mᵀu_j / σ_j (0 where σ_j = 0). */
export function rightVectors(m: Matrix, svd: Omit<Svd, "v">, count: number): Matrix {
  const { rows, cols } = m;
  const out = zeros(cols, count);
  for (let c = 0; c < count; c++) {
    const sigma = svd.s[c] as number;
    if (sigma === 0) continue;
    const uc = c * rows;
    for (let j = 0; j < cols; j++) {
      let dot = 0;
      const mj = j * rows;
      for (let i = 0; i < rows; i++) dot += (m.data[mj + i] as number) * (svd.u.data[uc + i] as number);
      out.data[c * cols + j] = dot / sigma;
    }
  }
  return out;
}

function hestenes(m: Matrix, withV: boolean): Omit<Svd, "v"> & { v?: Matrix } {
  const { rows, cols: n } = m;
  if (rows < n) throw new RangeError(`jacobiSvd needs rows ≥ cols, got ${rows}×${n}`);
  const g = Float64Array.from(m.data);
  const v = withV ? new Float64Array(n * n) : undefined;
  if (v) for (let j = 0; j < n; j++) v[j + j * n] = 1;
  const tol = Number.EPSILON * Math.max(rows, 16);
  for (let sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const cp = p * rows;
      for (let q = p + 1; q < n; q++) {
        const cq = q * rows;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < rows; i++) {
          const x = g[cp + i] as number;
          const y = g[cq + i] as number;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = g[cp + i] as number;
          const y = g[cq + i] as number;
          g[cp + i] = c * x - s * y;
          g[cq + i] = s * x + c * y;
        }
        if (!v) continue;
        const vp = p * n;
        const vq = q * n;
        for (let i = 0; i < n; i++) {
          const x = v[vp + i] as number;
          const y = v[vq + i] as number;
          v[vp + i] = c * x - s * y;
          v[vq + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += (g[j * rows + i] as number) ** 2;
    norms[j] = Math.sqrt(sum);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort(
    (x, y) => (norms[y] as number) - (norms[x] as number),
  );
  const u = zeros(rows, n);
  const vs = v ? zeros(n, n) : undefined;
  const s = new Float64Array(n);
  order.forEach((src, dst) => {
    const sigma = norms[src] as number;
    s[dst] = sigma;
    if (v && vs) vs.data.set(v.subarray(src * n, (src + 1) * n), dst * n);
    if (sigma === 0) return;
    for (let i = 0; i < rows; i++) u.data[dst * rows + i] = (g[src * rows + i] as number) / sigma;
  });
  return vs ? { u, s, v: vs } : { u, s };
}

/** a·b for column-major matrices. */
export function matmul(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new RangeError(`matmul: ${a.rows}×${a.cols} times ${b.rows}×${b.cols}`);
  const out = zeros(a.rows, b.cols);
  for (let j = 0; j < b.cols; j++) {
    const oj = j * a.rows;
    for (let k = 0; k < a.cols; k++) {
      const f = b.data[k + j * b.rows] as number;
      if (f === 0) continue;
      const ak = k * a.rows;
      for (let i = 0; i < a.rows; i++)
        out.data[oj + i] = (out.data[oj + i] as number) + f * (a.data[ak + i] as number);
    }
  }
  return out;
}

export function transpose(a: Matrix): Matrix {
  const out = zeros(a.cols, a.rows);
  for (let j = 0; j < a.cols; j++) {
    for (let i = 0; i < a.rows; i++) out.data[j + i * a.cols] = a.data[i + j * a.rows] as number;
  }
  return out;
}
