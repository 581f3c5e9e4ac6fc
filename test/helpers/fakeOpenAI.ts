import type { IncomingMessage, ServerResponse } from "node:http";
import { startServer } from "./httpServer.js";

export interface CompletionRequest {
  model: string;
  prompt: string;
  max_tokens: number;
  temperature: number;
  headers: IncomingMessage["headers"];
}

/** What the fake server does with one request: the n-th (0-based) request overall is `n`. */
export type Handler = (request: CompletionRequest, n: number, res: ServerResponse) => void | Promise<void>;

/**
 * A small OpenAI-style server on 127.0.0.1 (random port) for backend tests. It records every
 * request and the largest number of requests it had in flight at once.
 */
export async function startFakeOpenAI(handler: Handler): Promise<{
  baseUrl: string;
  requests: CompletionRequest[];
  maxInFlight: () => number;
  close: () => Promise<void>;
}> {
  const requests: CompletionRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = await startServer(async (req, body, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on("close", () => inFlight--);
    if (req.method !== "POST" || req.url !== "/v1/completions") {
      res.writeHead(404).end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    const request = { ...(JSON.parse(body) as Omit<CompletionRequest, "headers">), headers: req.headers };
    requests.push(request);
    await handler(request, requests.length - 1, res);
  });
  return { baseUrl: server.baseUrl, requests, maxInFlight: () => maxInFlight, close: server.close };
}

/** A successful completion in the shape vLLM and llama-server send. */
export function sendCompletion(res: ServerResponse, text: string, tokens: number, finish = "stop"): void {
  res.writeHead(200, { "content-type": "application/json" }).end(
    JSON.stringify({
      id: "cmpl-test",
      object: "text_completion",
      choices: [{ index: 0, text, finish_reason: finish }],
      usage: { prompt_tokens: 3, completion_tokens: tokens, total_tokens: 3 + tokens },
    }),
  );
}
