import { accumulateGram, balanceTileRows } from "./src/weights/gramKernel.js";
import { Worker } from "node:worker_threads";
const startWorker = (_u: URL, o: object) => new Worker(`import("tsx/esm/api").then((m) => { m.register(); return import("file:///work/main/src/weights/gramWorker.ts"); })`, { ...o, eval: true });
const n = +(process.argv[2] ?? 64), p = 2_000_000, stride = 65536 + +(process.argv[4] ?? 0), threads = +(process.argv[3] ?? 2);
const buffers = [0, 1].map(() => new Float32Array(new SharedArrayBuffer(n * stride * 4)));
for (const b of buffers) for (let i = 0; i < b.length; i++) b[i] = Math.random() - 0.5;
const blocks = Math.ceil(p / stride);
const flops = 2 * stride * n * (n - n / 2 + 2) * blocks;
if (threads === 1) {
  const g = new Float64Array(n * n); const rows = balanceTileRows(n, n, 1)[0]!;
  const t = performance.now();
  for (let b = 0; b < blocks; b++) accumulateGram(buffers[b % 2]!, n, stride, stride, g, rows);
  const s = (performance.now() - t) / 1000; console.log(`n=${n} threads=1 ${s.toFixed(2)} s ${(flops / s / 1e9).toFixed(2)} GFLOP/s (computed), ${(2*n*n*p/s/1e9).toFixed(2)} full-equivalent`);
} else {
  const parts = balanceTileRows(n, n, threads);
  const workers = parts.map((tileRows) => startWorker(new URL("./src/weights/gramWorker.js", import.meta.url), { workerData: { buffers: buffers.map((b) => b.buffer), rows: n, stride, tileRows } }));
  const step = (buffer: number) => Promise.all(workers.map((w) => new Promise<void>((r) => { w.once("message", () => r()); w.postMessage({ buffer, width: stride }); })));
  await step(0);
  const t = performance.now();
  for (let b = 0; b < blocks; b++) await step(b % 2);
  const s = (performance.now() - t) / 1000; console.log(`n=${n} threads=${threads} ${s.toFixed(2)} s ${(flops / s / 1e9).toFixed(2)} GFLOP/s (computed), ${(2*n*n*p/s/1e9).toFixed(2)} full-equivalent`);
  await Promise.all(workers.map((w) => w.terminate()));
}
