import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listen } from "../../../../sandbox/lib/listen";
import { keepAliveAgent, post } from "../../../../sandbox/lib/post";

/** The stand-ins' POST (post.ts) against a real local server: the answer, the bound, the network error. */
describe("post", () => {
  let server: Server;
  let url: URL;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let text = "";
      req.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      req.on("end", () => {
        if (req.url === "/silent") return;
        res.writeHead(418).end(`echo:${text}:${req.headers["content-length"]}`);
      });
    });
    url = new URL(await listen(server, "127.0.0.1", 0));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("resolves with any status and the whole body, the Content-Length set from the body", async () => {
    const agent = keepAliveAgent(url, 2);
    const answer = await post(new URL("/echo", url), agent, { "Content-Type": "text/plain" }, "héllo", 5_000);
    agent.destroy();
    expect(answer.status).toBe(418);
    expect(answer.body.toString()).toBe(`echo:héllo:${Buffer.byteLength("héllo")}`);
  });

  it("rejects with a TimeoutError when no answer comes within the bound", async () => {
    const agent = keepAliveAgent(url, 2);
    await expect(post(new URL("/silent", url), agent, {}, "", 200)).rejects.toMatchObject({
      name: "TimeoutError",
    });
    agent.destroy();
  });

  it("rejects with the network error when nothing listens", async () => {
    const closed = createServer();
    const port = new URL(await listen(closed, "127.0.0.1", 0)).port;
    await new Promise((resolve) => closed.close(resolve));
    const target = new URL(`http://127.0.0.1:${port}/`);
    const agent = keepAliveAgent(target, 1);
    await expect(post(target, agent, {}, "", 2_000)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    agent.destroy();
  });
});
