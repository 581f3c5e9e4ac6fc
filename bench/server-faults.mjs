#!/usr/bin/env node
// Issue 30's server cases 1–7: `eval --backend openai` and `generate --score-url` against local
// servers (127.0.0.1) that misbehave. Each case runs the built CLI in its own process and prints
// its exit code, time to exit, peak resident memory and the last line on stderr; a case still
// running after SERVER_FAULTS_CAP seconds (default 120) is stopped and said so. `npm run build` first.
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// SERVER_FAULTS_CLI: another build to compare with (e.g. an older commit's dist/cli/main.js).
const cli = process.env.SERVER_FAULTS_CLI ?? join(repo, "dist/cli/main.js");
const rssHook = join(repo, "bench/rss-hook.mjs");
const capSeconds = Number(process.env.SERVER_FAULTS_CAP ?? 120);
const work = mkdtempSync(join(tmpdir(), "loramix-server-faults-"));
const data = join(work, "three.jsonl");
writeFileSync(
  data,
  ["Is 7 prime?", "Is 8 prime?", "Is 9 prime?"]
    .map((q, i) => JSON.stringify({ input: q, output: i === 0 ? "Yes" : "No" }))
    .join("\n"),
);
const SCORE_DATA = join(repo, "testbed/sni/task195_sentiment140_classification.json");
// generate caches distances in the bank: a copy keeps the repo's testbed as it is.
const bank = join(work, "testbed");
cpSync(join(repo, "testbed"), bank, { recursive: true });
const BIG = 200 * 1024 * 1024;

/** A server on 127.0.0.1 whose every request goes to `handle(req, body, res)`. */
async function serve(handle) {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    let json = {};
    try {
      json = JSON.parse(body);
    } catch {}
    handle(req, json, res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}/v1`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}

function completion(res, text) {
  res.writeHead(200, { "content-type": "application/json" }).end(
    JSON.stringify({
      choices: [{ index: 0, text, finish_reason: "stop" }],
      usage: { completion_tokens: 1 },
    }),
  );
}

/** A 200 MB completion, written in 1 MB pieces; other routes (eval's questions first) are not found. */
function hugeCompletion(req, res) {
  if (req.url !== "/v1/completions") return void res.writeHead(404).end("{}");
  res.writeHead(200, { "content-type": "application/json" });
  res.write('{"choices":[{"index":0,"finish_reason":"stop","text":"');
  const piece = "a".repeat(1 << 20);
  let sent = 0;
  const more = () => {
    while (sent < BIG) {
      sent += piece.length;
      if (!res.write(piece)) return void res.once("drain", more);
    }
    res.end('"}]}');
  };
  more();
}

/** vLLM's scoring routes: load/unload answer, completions echo `logprob(model)` for every prompt token. */
function scoring(logprob, extra = {}) {
  return (req, body, res) => {
    if (extra[req.url]) return extra[req.url](req, body, res);
    if (req.url === "/v1/load_lora_adapter" || req.url === "/v1/unload_lora_adapter")
      return void res.writeHead(200).end("Success");
    if (req.url === "/v1/completions") {
      const ids = body.prompt;
      const lp = logprob(body.model);
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(
        `{"choices":[{"index":0,"text":"","logprobs":{"token_logprobs":[null${`,${lp}`.repeat(ids.length - 1)}]}}]}`,
      );
    }
    res.writeHead(404).end("{}");
  };
}

function runCli(args, { env = {}, onStart } = {}) {
  const rssFile = join(work, `.rss-${Math.random()}`);
  const started = performance.now();
  const child = spawn(process.execPath, ["--import", rssHook, cli, ...args], {
    cwd: work,
    env: { ...process.env, LORAMIX_RSS_FILE: rssFile, ...env },
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  child.stdout.resume();
  onStart?.(child);
  // Sampled too, so that a case stopped at the cap still has its peak.
  let peakKb = 0;
  const sampler = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch {}
  }, 100);
  let capped = false;
  const cap = setTimeout(() => {
    capped = true;
    child.kill("SIGKILL");
  }, capSeconds * 1000);
  return new Promise((done) =>
    child.on("close", (code) => {
      clearTimeout(cap);
      clearInterval(sampler);
      let rss = peakKb > 0 ? Math.round(peakKb / 1024) : null;
      try {
        rss = Math.max(rss ?? 0, Math.round(Number(readFileSync(rssFile, "utf8")) / 1024));
      } catch {}
      const lines = stderr.trim().split("\n");
      done({
        code: capped ? `killed at ${capSeconds} s` : code,
        seconds: (performance.now() - started) / 1000,
        rss,
        last: lines.at(-1)?.slice(0, 240) ?? "",
        stderrLines: lines.length,
        stderr,
      });
    }),
  );
}

const evalArgs = (url, extra = []) => [
  "eval",
  "--backend",
  "openai",
  "--base-url",
  url,
  "--model-name",
  "m",
  "--truncate",
  "none",
  "--data",
  data,
  "--split",
  "train",
  "--out",
  join(work, `out-${Math.random()}`),
  ...extra,
];
const generateArgs = (url) => [
  "generate",
  bank,
  "--data",
  SCORE_DATA,
  "--score-url",
  url,
  "--score-model",
  "base",
  "--score-examples",
  "4",
  "--out",
  join(work, `adapter-${Math.random()}`),
];

const cases = [
  [
    "1 server never answers (eval)",
    async () => {
      const s = await serve(() => {});
      try {
        return await runCli(evalArgs(s.url, ["--limit", "1"]));
      } finally {
        await s.close();
      }
    },
  ],
  [
    "2 Ctrl-C while unload_lora_adapter hangs (generate --score-url)",
    async () => {
      let child;
      let interruptedAt = 0;
      const s = await serve(
        scoring(() => -1, {
          "/v1/unload_lora_adapter": () => {
            if (interruptedAt === 0) {
              interruptedAt = performance.now();
              child.kill("SIGINT");
            }
          },
        }),
      );
      try {
        const r = await runCli(generateArgs(s.url), { onStart: (c) => (child = c) });
        return {
          ...r,
          note: interruptedAt
            ? `exit ${((performance.now() - interruptedAt) / 1000).toFixed(1)} s after SIGINT`
            : "no unload seen",
        };
      } finally {
        await s.close();
      }
    },
  ],
  ...[3, 1].map((limit) => [
    `3 200 MB completion, eval --limit ${limit}`,
    async () => {
      const s = await serve((req, _body, res) => hugeCompletion(req, res));
      try {
        const out = join(work, `big-${limit}`);
        const args = evalArgs(s.url, ["--limit", String(limit)]);
        args[args.indexOf("--out") + 1] = out;
        const r = await runCli(args);
        let size = null;
        try {
          size = statSync(join(out, "predictions.jsonl")).size;
        } catch {}
        return {
          ...r,
          note: size === null ? "no predictions.jsonl" : `predictions.jsonl ${(size / 1e6).toFixed(0)} MB`,
        };
      } finally {
        await s.close();
      }
    },
  ]),
  [
    "3 200 MB scoring response (generate --score-url)",
    async () => {
      const s = await serve((req, body, res) =>
        req.url === "/v1/completions" ? hugeCompletion(req, res) : scoring(() => -1)(req, body, res),
      );
      try {
        return await runCli(generateArgs(s.url));
      } finally {
        await s.close();
      }
    },
  ],
  ...[307, 302].map((status) => [
    `4 ${status} redirect to another port`,
    async () => {
      let reached = 0;
      const other = await serve((_req, _body, res) => {
        reached++;
        completion(res, "elsewhere");
      });
      const s = await serve((req, _body, res) => {
        res.writeHead(status, { location: `${other.url.replace("/v1", "")}${req.url}` }).end();
      });
      try {
        const r = await runCli(evalArgs(s.url, ["--limit", "1"]));
        return { ...r, note: `other server reached ${reached} times` };
      } finally {
        await s.close();
        await other.close();
      }
    },
  ]),
  [
    "5 credentials in --base-url",
    async () => {
      const s = await serve((_req, _body, res) => completion(res, "x"));
      try {
        const r = await runCli(evalArgs(s.url.replace("//", "//user:hunter2secret@"), ["--limit", "1"]));
        return { ...r, note: `password printed ${r.stderr.split("hunter2secret").length - 1} times` };
      } finally {
        await s.close();
      }
    },
  ],
  [
    "5 401 quoting the key",
    async () => {
      const s = await serve((req, _body, res) =>
        res.writeHead(401, { "content-type": "application/json" }).end(
          JSON.stringify({
            error: { message: `Incorrect API key provided: ${req.headers.authorization}` },
          }),
        ),
      );
      try {
        const r = await runCli(evalArgs(s.url, ["--limit", "1"]), {
          env: { OPENAI_API_KEY: "sk-verysecret123456" },
        });
        return { ...r, note: `key printed ${r.stderr.split("sk-verysecret123456").length - 1} times` };
      } finally {
        await s.close();
      }
    },
  ],
  ...[
    ["+50", "50"],
    ["1e999", "1e999"],
  ].map(([label, value]) => [
    `6 log-probability ${label} for one candidate`,
    async () => {
      let first = null;
      const s = await serve(
        scoring((model) => {
          if (model !== "base" && first === null) first = model;
          return model === first ? value : "-2";
        }),
      );
      try {
        return await runCli(generateArgs(s.url));
      } finally {
        await s.close();
      }
    },
  ]),
  [
    "7 connection closed mid-body",
    async () => {
      const s = await serve((_req, _body, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"choices":[{"text":"par');
        setTimeout(() => res.socket.destroy(), 50);
      });
      try {
        return await runCli(evalArgs(s.url, ["--limit", "1"]));
      } finally {
        await s.close();
      }
    },
  ],
  [
    "7 --api-key-env names an unset variable",
    async () => {
      let auth = "unset";
      const s = await serve((req, _body, res) => {
        auth = req.headers.authorization ?? "none";
        completion(res, "x");
      });
      try {
        const r = await runCli(evalArgs(s.url, ["--limit", "1", "--api-key-env", "LORAMIX_FAULTS_UNSET"]));
        return { ...r, note: `authorization header sent: ${auth}` };
      } finally {
        await s.close();
      }
    },
  ],
];

const only = process.argv[2];
console.log(`# server faults, ${new Date().toISOString().slice(0, 10)}, cap ${capSeconds} s`);
console.log("| case | exit | seconds | peak MB | stderr lines | last stderr line | note |");
console.log("|---|---|---:|---:|---:|---|---|");
for (const [label, run] of cases) {
  if (only && !label.startsWith(only)) continue;
  const r = await run();
  // SERVER_FAULTS_STDERR=1: each case's whole stderr too.
  if (process.env.SERVER_FAULTS_STDERR) process.stderr.write(`## ${label}\n${r.stderr}\n`);
  const cell = (s) => String(s).replace(/\|/g, "\\|").replace(/\n/g, " ");
  console.log(
    `| ${label} | ${r.code} | ${r.seconds.toFixed(1)} | ${r.rss ?? "-"} | ${r.stderrLines} | ${cell(r.last)} | ${cell(r.note ?? "")} |`,
  );
}
rmSync(work, { recursive: true, force: true });
