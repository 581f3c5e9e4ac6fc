/**
 * Kernel throughput of the Gram worker protocol: `npx tsx scripts/benchGram.ts [N...]`.
 * One block buffer of random floats, shaped as gramOfAdapters shapes it for 128 MB blocks, is
 * multiplied as many times as p = 2M parameters need; reading is not included.
 */
import type { Worker } from "node:worker_threads";
import { startWorker } from "../src/util/workers.js";
import { balanceTileRows } from "../src/weights/gramKernel.js";

const P = 2 * 1024 * 1024;
const BLOCK_BYTES = 128 * 1024 * 1024;

/** GFLOP/s of wall time, and per CPU-second (what the threads got of a machine shared with others). */
async function bench(n: number, threads: number): Promise<{ wall: number; cpu: number }> {
  const rows = Math.ceil(n / 4) * 4;
  const stride = Math.ceil(Math.floor(BLOCK_BYTES / (4 * rows)) / 64) * 64 + 64;
  const width = Math.min(P, stride - 64);
  const buffer = new SharedArrayBuffer(rows * stride * 4);
  const x = new Float32Array(buffer);
  for (let k = 0; k < x.length; k++) x[k] = Math.random() - 0.5;
  const parts = balanceTileRows(rows, rows, threads);
  const workers: Worker[] = parts.map((tileRows) =>
    startWorker(new URL("../src/weights/gramWorker.js", import.meta.url), {
      workerData: { buffers: [buffer], rows, stride, tileRows },
    }),
  );
  const run = (w: Worker, cols: number) =>
    new Promise<void>((resolve) => {
      w.once("message", () => resolve());
      w.postMessage({ buffer: 0, width: cols });
    });
  await Promise.all(workers.map((w) => run(w, 256))); // boot + compile
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  for (let done = 0; done < P; done += width)
    await Promise.all(workers.map((w) => run(w, Math.min(width, P - done))));
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  await Promise.all(workers.map((w) => w.terminate()));
  const gflop = (2 * P * rows * (rows / 2 + 2)) / 1e9;
  return { wall: gflop / seconds, cpu: gflop / ((cpu.user + cpu.system) / 1e6) };
}

const sizes = process.argv.slice(2).map(Number);
for (const n of sizes.length > 0 ? sizes : [64, 256])
  for (const threads of [1, 2]) {
    const { wall, cpu } = await bench(n, threads);
    console.log(
      `N=${n} threads=${threads}: ${wall.toFixed(2)} GFLOP/s, ${cpu.toFixed(2)} GFLOP per CPU-second`,
    );
  }
