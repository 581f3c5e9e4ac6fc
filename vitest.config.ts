import { defineConfig } from "vitest/config";

/**
 * Tests that run a model (llama.cpp, llama-server, the tfjs trainer), Chromium, the built CLI or the fuzzer:
 * `npm test` runs them with everything else, `npm run test:unit` leaves them out for a quick loop.
 */
const MODEL_TESTS = [
  "cli",
  "demo",
  "eval",
  "finetuneGuard",
  "ggufModel",
  "fuzz",
  "kill",
  "llamaBackend",
  "llamaServer",
  "readme",
  "report",
  "select",
  "serverFaults",
  "testbedBuild",
  "train",
];

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/keepTestbed.ts", "test/helpers/privateTmp.ts"],
    setupFiles: ["test/helpers/fileTmp.ts"],
    exclude: process.env.LORAMIX_UNIT ? MODEL_TESTS.map((name) => `test/${name}.test.ts`) : [],
    // Two cores: parallel files would fight over them and time out the model tests.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
