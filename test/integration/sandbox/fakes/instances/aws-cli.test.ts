import { createServer, type Server } from "node:http";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, motoAvailable, startMoto } from "../../../../../sandbox/fakes/aws/moto";
import { AwsCliError, awsCli, SECRETS_MANAGER, SSM } from "../../../../../sandbox/fakes/instances/aws-cli";
import { listen } from "../../../../../sandbox/lib/listen";

/**
 * The instances' AWS CLI (aws-cli.ts): the JSON protocol against the real moto server (the region
 * from the credential scope, the service's error code as the error's name), and the CLI's standard
 * retries against a local server that answers what each case needs.
 */
const SECRET_VALUE = "placeholder-secret-value";

describe("awsCli against moto", () => {
  let moto: MotoServer;
  beforeAll(async () => {
    if (!motoAvailable()) throw new Error('moto is not installed for python3: pip install "moto[server]"');
    moto = await startMoto();
    const secrets = new SecretsManagerClient({
      region: "us-west-2",
      endpoint: moto.url,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    await secrets.send(new CreateSecretCommand({ Name: "agent-token", SecretString: SECRET_VALUE }));
    secrets.destroy();
  }, 60_000);
  afterAll(async () => {
    await moto?.stop();
  });

  it("reads a secret through the SSM reference path in its region, and not in another", async () => {
    const cli = awsCli({ endpoint: moto.url });
    try {
      const input = { Name: "/aws/reference/secretsmanager/agent-token", WithDecryption: true };
      const out = await cli.call(SSM, "us-west-2", "GetParameter", input);
      expect((out.Parameter as { Value?: string }).Value).toBe(SECRET_VALUE);
      const direct = await cli.call(SECRETS_MANAGER, "us-west-2", "GetSecretValue", {
        SecretId: "agent-token",
      });
      expect(direct.SecretString).toBe(SECRET_VALUE);
      // The secret exists only in us-west-2: moto picks the backend from the credential scope.
      const elsewhere = await cli.call(SSM, "eu-west-1", "GetParameter", input).catch((e: unknown) => e);
      expect(elsewhere).toBeInstanceOf(AwsCliError);
      expect((elsewhere as AwsCliError).name).toBe("ParameterNotFound");
      expect((elsewhere as AwsCliError).status).toBe(400);
    } finally {
      cli.destroy();
    }
  });
});

describe("awsCli's retries (the CLI's standard mode)", () => {
  let server: Server;
  let url: string;
  let answers: Array<{ status: number; type?: string } | "silent">;
  let requests: Array<{ target?: string; authorization?: string }>;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push({
        target: req.headers["x-amz-target"] as string | undefined,
        authorization: req.headers.authorization,
      });
      req.resume();
      const answer = answers.shift() ?? { status: 200 };
      if (answer === "silent") return;
      const body =
        answer.status < 300 ? { ok: true } : { __type: `com.amazonaws.ssm#${answer.type ?? "Oops"}` };
      res
        .writeHead(answer.status, { "Content-Type": "application/x-amz-json-1.1" })
        .end(JSON.stringify(body));
    });
    url = await listen(server, "127.0.0.1", 0);
  });
  afterEach(() => {
    server.closeAllConnections();
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const call = (options: { attempts?: number; requestTimeoutMs?: number } = {}) => {
    const cli = awsCli({ endpoint: url, baseDelayMs: 1, ...options });
    return cli.call(SSM, "ap-south-1", "GetParameter", { Name: "x" }).finally(() => cli.destroy());
  };

  it("sends the JSON protocol's target and the region's credential scope", async () => {
    answers = [{ status: 200 }];
    requests = [];
    await expect(call()).resolves.toEqual({ ok: true });
    expect(requests).toHaveLength(1);
    expect(requests[0]?.target).toBe("AmazonSSM.GetParameter");
    expect(requests[0]?.authorization).toMatch(/Credential=test\/\d{8}\/ap-south-1\/ssm\/aws4_request/);
  });

  it("retries 503 and throttling, three attempts in all, and then fails with the last error", async () => {
    answers = [
      { status: 503, type: "ServiceUnavailable" },
      { status: 400, type: "ThrottlingException" },
    ];
    requests = [];
    await expect(call()).resolves.toEqual({ ok: true });
    expect(requests).toHaveLength(3);

    answers = [{ status: 500 }, { status: 502 }, { status: 504, type: "GatewayTimeout" }, { status: 200 }];
    requests = [];
    const error = await call().catch((e: unknown) => e);
    expect(requests).toHaveLength(3);
    expect(error).toMatchObject({ name: "GatewayTimeout", status: 504 });
  });

  it("does not retry a client error", async () => {
    answers = [{ status: 400, type: "ParameterNotFound" }, { status: 200 }];
    requests = [];
    await expect(call()).rejects.toMatchObject({ name: "ParameterNotFound", status: 400 });
    expect(requests).toHaveLength(1);
  });

  it("times an attempt out and tries again", async () => {
    answers = ["silent", { status: 200 }];
    requests = [];
    await expect(call({ requestTimeoutMs: 200 })).resolves.toEqual({ ok: true });
    expect(requests).toHaveLength(2);

    answers = ["silent"];
    requests = [];
    await expect(call({ attempts: 1, requestTimeoutMs: 200 })).rejects.toMatchObject({
      name: "TimeoutError",
    });
  });
});
