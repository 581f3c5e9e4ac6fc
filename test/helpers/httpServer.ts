import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What a test server does with one request, its body already read. */
export type RawHandler = (req: IncomingMessage, body: string, res: ServerResponse) => void | Promise<void>;

/** An HTTP server on 127.0.0.1 (a free port) for tests of server backends; close() drops every connection. */
export async function startServer(handler: RawHandler): Promise<{
  port: number;
  /** http://127.0.0.1:PORT/v1, the base URL loramix is given. */
  baseUrl: string;
  close: () => Promise<void>;
}> {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    await handler(req, body, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}/v1`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
