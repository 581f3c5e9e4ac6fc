/**
 * GGUF name of a Hugging Face Llama weight (`model.layers.3.self_attn.q_proj.weight` →
 * `blk.3.attn_q.weight`), null for buffers that llama.cpp recomputes (rotary inv_freq).
 */
export function ggufTensorName(hfName: string): string | null {
  const global: Record<string, string> = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
  };
  const g = global[hfName];
  if (g !== undefined) return g;
  if (hfName.endsWith(".rotary_emb.inv_freq")) return null;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const part = m?.[2] !== undefined ? LAYER_PARTS[m[2]] : undefined;
  if (m === null || part === undefined) throw new Error(`no GGUF name for "${hfName}"`);
  return `blk.${m[1]}.${part}`;
}

const LAYER_PARTS: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.o_proj.weight": "attn_output.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
};

/**
 * Rows of a Q or K projection (or of its LoRA B) reordered the way llama.cpp's converter does:
 * Hugging Face rotates the two halves of each head (rotate_half), llama.cpp rotates adjacent
 * pairs, so within every head row `i·(d/2) + j` moves to `2j + i`. K uses the KV head count.
 */
export function permuteForRope(w: Float32Array, rows: number, nHead: number): Float32Array {
  const cols = w.length / rows;
  const headDim = rows / nHead;
  if (!Number.isInteger(cols) || !Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new Error(`cannot permute ${rows} rows into ${nHead} heads`);
  }
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const from = (h * headDim + i * half + j) * cols;
        const to = (h * headDim + 2 * j + i) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}
