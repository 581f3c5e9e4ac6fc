/**
 * Seeded, platform-independent random numbers for synthetic adapters. Billions of values are
 * drawn for a Mistral-sized bank, so the generator is a 32-bit xorshift (three shifts per value)
 * and the stream seeds are derived by hashing names, which makes every tensor reproducible on its
 * own, whatever the order of generation.
 */

/** FNV-1a over the UTF-8 bytes of the parts, mixed with the seed; never 0 (xorshift's fixed point). */
export function streamSeed(seed: number, ...parts: string[]): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const part of parts) {
    for (const byte of Buffer.from(`${part}\0`, "utf8")) {
      h ^= byte;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  // A final avalanche so that seeds differing in one bit give unrelated streams.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h === 0 ? 0x9e3779b9 : h;
}

/**
 * out[i] = base[i] + scale·u_i (or scale·u_i without base) with u_i uniform in [−1, 1) from a
 * xorshift32 stream. Returns nothing: the stream is fully determined by `seed`.
 */
export function addUniform(out: Float32Array, seed: number, scale: number, base?: Float32Array): void {
  let x = seed | 0 || 0x9e3779b9 | 0;
  const f = scale / 2147483648;
  const n = out.length;
  if (base) {
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = (base[i] as number) + x * f;
    }
  } else {
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = (out[i] as number) + x * f;
    }
  }
}

/** A seeded uniform generator in [0, 1), for the few scalar draws tests and tools need. */
export function uniformStream(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9 | 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}
