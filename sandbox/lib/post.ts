/**
 * One POST over a keep-alive agent, for the stand-ins' own clients (the instances' registration and
 * AWS CLI): node:http rather than fetch, which cost about twice the CPU per call at 1,500 boots a
 * rotation. `timeoutMs` bounds the whole call, waiting for a socket included (http's own `timeout`
 * is only an idle one).
 */

import http from "node:http";
import https from "node:https";

export interface PostAnswer {
  status: number;
  body: Buffer;
}

/** The transport for a URL, and a keep-alive agent of it. */
export function keepAliveAgent(url: URL, maxSockets: number): http.Agent {
  return new (url.protocol === "https:" ? https : http).Agent({ keepAlive: true, maxSockets });
}

/** Resolves with any HTTP answer; rejects with the network error, or a `TimeoutError` after `timeoutMs`. */
export function post(
  url: URL,
  agent: http.Agent,
  headers: Record<string, string | number>,
  body: string,
  timeoutMs: number,
): Promise<PostAnswer> {
  const transport = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    let done = false;
    const settle = (error: unknown, answer?: PostAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      if (answer) resolve(answer);
      else reject(error);
    };
    const req = transport.request(
      url,
      { method: "POST", agent, headers: { ...headers, "Content-Length": Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => settle(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", (error) => settle(error));
      },
    );
    const deadline = setTimeout(
      () =>
        req.destroy(
          Object.assign(new Error(`POST ${url.pathname}: no answer within ${timeoutMs} ms`), {
            name: "TimeoutError",
          }),
        ),
      timeoutMs,
    );
    req.on("error", (error) => settle(error));
    req.end(body);
  });
}
