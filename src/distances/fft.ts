/**
 * Iterative radix-2 complex FFT in float64 (size a power of two). Small and dependency-free; MMD
 * needs one convolution per profile, so a few dozen lines beat pulling in a DSP package.
 */
export class Fft {
  readonly size: number;
  /** cos/sin(2πi/size) for i < size/2, each from the exact angle, so round-off stays ~1e-16. */
  readonly #cos: Float64Array;
  readonly #sin: Float64Array;

  constructor(size: number) {
    if (size < 1 || (size & (size - 1)) !== 0) throw new RangeError(`FFT size ${size} is not a power of two`);
    this.size = size;
    this.#cos = new Float64Array(size >> 1);
    this.#sin = new Float64Array(size >> 1);
    for (let i = 0; i < size >> 1; i++) {
      this.#cos[i] = Math.cos((2 * Math.PI * i) / size);
      this.#sin[i] = Math.sin((2 * Math.PI * i) / size);
    }
  }

  /** In place; the inverse includes the 1/n factor. */
  transform(re: Float64Array, im: Float64Array, inverse = false): void {
    const n = this.size;
    for (let i = 1, j = 0; i < n; i++) {
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) {
        const tr = re[i]!;
        re[i] = re[j]!;
        re[j] = tr;
        const ti = im[i]!;
        im[i] = im[j]!;
        im[j] = ti;
      }
    }
    const sign = inverse ? 1 : -1;
    for (let len = 2; len <= n; len <<= 1) {
      const half = len >> 1;
      const step = n / len;
      for (let k = 0; k < half; k++) {
        const wr = this.#cos[k * step]!;
        const wi = sign * this.#sin[k * step]!;
        for (let i = k; i < n; i += len) {
          const j = i + half;
          const xr = re[j]! * wr - im[j]! * wi;
          const xi = re[j]! * wi + im[j]! * wr;
          re[j] = re[i]! - xr;
          im[j] = im[i]! - xi;
          re[i] = re[i]! + xr;
          im[i] = im[i]! + xi;
        }
      }
    }
    if (inverse) {
      for (let i = 0; i < n; i++) {
        re[i] = re[i]! / n;
        im[i] = im[i]! / n;
      }
    }
  }
}
