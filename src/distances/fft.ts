/**
 * Iterative radix-2 complex FFT in float64 (size a power of two). Small and dependency-free; MMD
 * needs one convolution per profile, so a few dozen lines beat pulling in a DSP package.
 */
export class Fft {
  readonly size: number;
  /** cos/sin(2πi/size) for i < size/2, each from the exact angle (no running product), so every
   * twiddle is within an ulp or so and the transform's relative l2 error stays ≈ 7u·log2(size). */
  readonly #cos: Float64Array;
  readonly #sin: Float64Array;
  readonly #reversed: Uint32Array;

  constructor(size: number) {
    if (size < 2 || (size & (size - 1)) !== 0)
      throw new RangeError(`FFT size ${size} is not a power of two ≥ 2`);
    this.size = size;
    const half = size >> 1;
    this.#cos = new Float64Array(half);
    this.#sin = new Float64Array(half);
    for (let i = 0; i < half; i++) {
      this.#cos[i] = Math.cos((2 * Math.PI * i) / size);
      this.#sin[i] = Math.sin((2 * Math.PI * i) / size);
    }
    const bits = Math.log2(size);
    this.#reversed = new Uint32Array(size);
    for (let i = 1; i < size; i++) {
      this.#reversed[i] = ((this.#reversed[i >> 1] as number) >> 1) | ((i & 1) << (bits - 1));
    }
  }

  /** In place; the inverse includes the 1/size factor. */
  transform(re: Float64Array, im: Float64Array, inverse = false): void {
    const n = this.size;
    if (re.length !== n || im.length !== n) {
      throw new RangeError(`FFT of size ${n} given arrays of ${re.length} and ${im.length}`);
    }
    const reversed = this.#reversed;
    for (let i = 1; i < n; i++) {
      const j = reversed[i] as number;
      if (i < j) {
        const tr = re[i] as number;
        re[i] = re[j] as number;
        re[j] = tr;
        const ti = im[i] as number;
        im[i] = im[j] as number;
        im[j] = ti;
      }
    }
    const cos = this.#cos;
    const sin = this.#sin;
    const sign = inverse ? 1 : -1;
    for (let len = 2; len <= n; len <<= 1) {
      const half = len >> 1;
      const step = n / len;
      for (let start = 0; start < n; start += len) {
        for (let k = 0; k < half; k++) {
          const wr = cos[k * step] as number;
          const wi = sign * (sin[k * step] as number);
          const i = start + k;
          const j = i + half;
          const rj = re[j] as number;
          const ij = im[j] as number;
          const xr = rj * wr - ij * wi;
          const xi = rj * wi + ij * wr;
          const ri = re[i] as number;
          const ii = im[i] as number;
          re[j] = ri - xr;
          im[j] = ii - xi;
          re[i] = ri + xr;
          im[i] = ii + xi;
        }
      }
    }
    if (inverse) {
      const scale = 1 / n;
      for (let i = 0; i < n; i++) {
        re[i] = (re[i] as number) * scale;
        im[i] = (im[i] as number) * scale;
      }
    }
  }
}
