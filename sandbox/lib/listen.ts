import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Starts `server` on host:port (0 = the OS picks) and returns its base URL. */
export async function listen(server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port: bound } = server.address() as AddressInfo;
  return `http://${host.includes(":") ? `[${host}]` : host}:${bound}`;
}

/**
 * Serves `handle` on loopback until close(). close() also drops the connections the AWS SDK keeps
 * alive: without that, it would wait for them to idle out.
 */
export async function serve(
  handle: (request: IncomingMessage, response: ServerResponse) => Promise<void>,
  host = "127.0.0.1",
  port = 0,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    void handle(request, response);
  });
  const url = await listen(server, host, port);
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The region a request was signed for: `Credential=AKID/20260101/<region>/<service>/aws4_request`. */
export function signingRegion(authorization: string | undefined): string | undefined {
  return /Credential=[^/,\s]+\/\d{8}\/([^/,\s]+)\/[^/,\s]+\/aws4_request/.exec(authorization ?? "")?.[1];
}

/** The request body, refused (with the caller's protocol error) past `maxBytes`. */
export async function readBodyCapped(
  request: IncomingMessage,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** The body as text; undefined past `maxBytes` (any other read error propagates). */
export async function readTextOrUndefined(
  request: IncomingMessage,
  maxBytes: number,
): Promise<string | undefined> {
  const tooLarge = new Error("request body too large");
  try {
    return (await readBodyCapped(request, maxBytes, () => tooLarge)).toString("utf8");
  } catch (error) {
    if (error === tooLarge) return undefined;
    throw error;
  }
}
