import { connect, type Socket } from "node:net";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, motoAvailable, startMoto } from "../../../../../sandbox/fakes/aws/moto";

/**
 * The launcher keeps moto's connections alive (moto-server.py, fifth change): several requests on one
 * connection, each answered as moto answers it, a body moto never reads drained so the next request
 * still parses, and a connection closed when the client asks or speaks HTTP/1.0, as shipped.
 */

const SIGNED = (service: string) =>
  `AWS4-HMAC-SHA256 Credential=test/20261201/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=x`;

function request(
  target: string,
  service: string,
  body: string,
  extra: string[] = [],
  version = "1.1",
): string {
  return [
    `POST / HTTP/${version}`,
    "Host: 127.0.0.1",
    `X-Amz-Target: ${target}`,
    "Content-Type: application/x-amz-json-1.1",
    `Authorization: ${SIGNED(service)}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...extra,
    "",
    body,
  ].join("\r\n");
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A raw connection that reads whole responses (Content-Length framed) and notices when the server closes it. */
class RawConnection {
  private buffered = "";
  private waiters: Array<() => void> = [];
  closed = false;
  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffered += chunk;
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }
  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => resolve(new RawConnection(socket)));
      socket.on("error", reject);
    });
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  private async until(ready: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!ready()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
  async send(raw: string): Promise<Reply> {
    this.socket.write(raw);
    await this.until(() => this.buffered.includes("\r\n\r\n"), "response headers");
    const end = this.buffered.indexOf("\r\n\r\n");
    const [statusLine = "", ...lines] = this.buffered.slice(0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const i = line.indexOf(":");
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    await this.until(() => Buffer.byteLength(this.buffered.slice(end + 4)) >= length, "response body");
    const body = this.buffered.slice(end + 4, end + 4 + length);
    this.buffered = this.buffered.slice(end + 4 + length);
    return { status: Number(statusLine.split(" ")[1]), headers, body };
  }
  async closedByServer(): Promise<boolean> {
    await this.until(() => this.closed, "the server to close").catch(() => undefined);
    return this.closed;
  }
  end(): void {
    this.socket.destroy();
  }
}

describe("sandbox/fakes/aws/moto-server.py keep-alive", () => {
  let moto: MotoServer;
  beforeAll(async () => {
    if (!motoAvailable()) throw new Error('moto is not installed for python3: pip install "moto[server]"');
    moto = await startMoto();
  }, 60_000);
  afterAll(async () => {
    await moto?.stop();
  });

  it("answers several requests on one connection, draining a body moto never reads", async () => {
    const c = await RawConnection.open(moto.port);
    try {
      const created = await c.send(
        request(
          "secretsmanager.CreateSecret",
          "secretsmanager",
          JSON.stringify({ Name: "ka", SecretString: "v1" }),
        ),
      );
      expect(created.status).toBe(200);
      expect(created.headers.connection).not.toBe("close");
      // moto's data endpoint reads no body: the launcher reads it off, and the next request parses.
      const unread = "x".repeat(5_000);
      const dump = await c.send(
        [
          "GET /moto-api/data.json HTTP/1.1",
          "Host: 127.0.0.1",
          `Content-Length: ${unread.length}`,
          "",
          unread,
        ].join("\r\n"),
      );
      expect(dump.status).toBe(200);
      const read = await c.send(
        request("secretsmanager.GetSecretValue", "secretsmanager", JSON.stringify({ SecretId: "ka" })),
      );
      expect(read.status).toBe(200);
      expect(JSON.parse(read.body)).toMatchObject({ Name: "ka", SecretString: "v1" });
      const missing = await c.send(
        request("secretsmanager.DescribeSecret", "secretsmanager", JSON.stringify({ SecretId: "nope" })),
      );
      expect(missing.status).toBeGreaterThanOrEqual(400);
      expect(missing.body).toContain("ResourceNotFoundException");
      expect(c.closed).toBe(false);
    } finally {
      c.end();
    }
  });

  it("closes the connection when the client asks to, or speaks HTTP/1.0, as moto does", async () => {
    const body = JSON.stringify({ SecretId: "nope" });
    for (const [extra, version] of [
      [["Connection: close"], "1.1"],
      [[], "1.0"],
    ] as const) {
      const c = await RawConnection.open(moto.port);
      try {
        const reply = await c.send(
          request("secretsmanager.DescribeSecret", "secretsmanager", body, [...extra], version),
        );
        expect(reply.body).toContain("ResourceNotFoundException");
        expect(await c.closedByServer()).toBe(true);
      } finally {
        c.end();
      }
    }
  });

  it("after a kept-alive request, answers a request http.server refuses itself and closes, as shipped", async () => {
    const c = await RawConnection.open(moto.port);
    try {
      const first = await c.send(
        request("secretsmanager.DescribeSecret", "secretsmanager", JSON.stringify({ SecretId: "nope" })),
      );
      expect(first.body).toContain("ResourceNotFoundException");
      expect(c.closed).toBe(false);
      // A header line over http.server's 65,536 characters: refused before moto sees it (431).
      const bad = await c.send(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: ${"a".repeat(70_000)}\r\n\r\n`);
      expect(bad.status).toBe(431);
      expect(bad.headers.connection).toBe("close");
      expect(await c.closedByServer()).toBe(true);
    } finally {
      c.end();
    }
  });

  it("serves an SDK client's sequential calls over one connection (as shipped: one connection per call)", async () => {
    let connects = 0;
    const { Agent } = await import("node:http");
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const create = agent.createConnection.bind(agent);
    agent.createConnection = ((...args: Parameters<typeof create>) => {
      connects += 1;
      return create(...args);
    }) as typeof agent.createConnection;
    const ssm = new SSMClient({
      region: "us-east-1",
      endpoint: moto.url,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      requestHandler: { httpAgent: agent, requestTimeout: 10_000 },
    });
    try {
      for (let i = 0; i < 5; i++)
        await expect(ssm.send(new GetParameterCommand({ Name: `/missing/${i}` }))).rejects.toMatchObject({
          name: "ParameterNotFound",
        });
      expect(connects).toBe(1);
    } finally {
      ssm.destroy();
      agent.destroy();
    }
  });
});
