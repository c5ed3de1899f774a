import { describe, expect, it } from "vitest";
import { buildkiteRoute, signingService, totalCalls } from "../../../../../sandbox/fakes/aws/call-meter";

describe("call meter keys", () => {
  it("reads the service from the SigV4 credential scope", () => {
    expect(
      signingService(
        "AWS4-HMAC-SHA256 Credential=test/20261201/eu-west-1/autoscaling/aws4_request, SignedHeaders=host, Signature=abc",
      ),
    ).toBe("autoscaling");
    expect(
      signingService("AWS4-HMAC-SHA256 Credential=test/20261201/us-east-1/secretsmanager/aws4_request"),
    ).toBe("secretsmanager");
    expect(signingService(undefined)).toBeUndefined();
    expect(signingService("Bearer abc")).toBeUndefined();
  });

  it("names Buildkite routes without their ids", () => {
    expect(buildkiteRoute("/v2/organizations/acme/clusters/c-1/tokens")).toBe(
      "/v2/organizations/{org}/clusters/{cluster}/tokens",
    );
    expect(buildkiteRoute("/v2/organizations/acme/clusters/c-1/tokens/t-9")).toBe(
      "/v2/organizations/{org}/clusters/{cluster}/tokens/{id}",
    );
    expect(buildkiteRoute("/v2/organizations/acme/agents/a-1/stop")).toBe(
      "/v2/organizations/{org}/agents/{id}/stop",
    );
    expect(buildkiteRoute("/v2/organizations/acme/agents")).toBe("/v2/organizations/{org}/agents");
    expect(buildkiteRoute("/v3/metrics")).toBe("/v3/metrics");
    expect(buildkiteRoute("/v2/access-token")).toBe("/v2/access-token");
  });

  it("totals a count table", () => {
    expect(totalCalls({ "a:B": 2, "c:D": 3 })).toBe(5);
    expect(totalCalls({})).toBe(0);
  });
});
