import { describe, expect, it } from "vitest";
import { regionFromAuthorization, reshapeReference } from "../../../../../sandbox/fakes/ssm/server";

const PATH = "/aws/reference/secretsmanager/buildkite/agent-token";
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbCdEf";
/** What moto 5.2.1 answers for a reference: the bare name and a DescribeSecret document. */
const motoAnswer = (value: string) =>
  Buffer.from(
    JSON.stringify({
      Parameter: {
        Name: "buildkite/agent-token",
        Type: "SecureString",
        Value: value,
        Version: 0,
        SourceResult: JSON.stringify({
          ARN,
          Name: "buildkite/agent-token",
          CreatedDate: 1700000000,
          VersionIdsToStages: { "v-old": ["AWSPREVIOUS"], "v-new": ["AWSCURRENT"] },
        }),
        ARN: "arn:aws:ssm:us-east-1:123456789012:parameter/buildkite/agent-token",
      },
    }),
  );
const request = (name: string) => Buffer.from(JSON.stringify({ Name: name, WithDecryption: true }));
const parsed = (b: Buffer) => JSON.parse(b.toString()) as { Parameter: Record<string, string> };

describe("reshapeReference (moto's Secrets Manager reference answer → AWS's)", () => {
  it("gives SourceResult the GetSecretValue shape with the selected version's id", () => {
    for (const [selector, version, stages] of [
      [":AWSPREVIOUS", "v-old", ["AWSPREVIOUS"]],
      [":AWSCURRENT", "v-new", ["AWSCURRENT"]],
      ["", "v-new", ["AWSCURRENT"]],
      [":v-old", "v-old", ["AWSPREVIOUS"]],
    ] as const) {
      const out = parsed(reshapeReference(request(`${PATH}${selector}`), motoAnswer("tok")));
      expect(out.Parameter.Name).toBe(PATH);
      expect(out.Parameter.ARN).toBe(ARN);
      expect(out.Parameter.Selector).toBe(selector === "" ? undefined : selector);
      expect(JSON.parse(out.Parameter.SourceResult ?? "")).toEqual({
        ARN,
        CreatedDate: 1700000000,
        Name: "buildkite/agent-token",
        SecretString: "tok",
        VersionId: version,
        VersionStages: stages,
      });
    }
  });

  it("leaves plain parameters, unknown selectors and AWS-shaped answers alone", () => {
    const plain = Buffer.from(JSON.stringify({ Parameter: { Name: "/x", Value: "v" } }));
    expect(reshapeReference(request("/x"), plain)).toBe(plain);
    const unknown = motoAnswer("tok");
    expect(reshapeReference(request(`${PATH}:AWSPENDING`), unknown)).toBe(unknown);
    const once = reshapeReference(request(PATH), motoAnswer("tok"));
    expect(reshapeReference(request(PATH), once)).toBe(once);
  });
});

describe("regionFromAuthorization", () => {
  it("takes the region from the SigV4 credential scope", () => {
    expect(
      regionFromAuthorization(
        "AWS4-HMAC-SHA256 Credential=test/20261201/eu-west-1/ssm/aws4_request, SignedHeaders=host, Signature=abc",
      ),
    ).toBe("eu-west-1");
    expect(() => regionFromAuthorization(undefined)).toThrow(expect.objectContaining({ httpStatus: 403 }));
  });
});
