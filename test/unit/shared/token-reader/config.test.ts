import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../../shared/lib/errors";
import { loadReadTokenConfig } from "../../../../shared/token-reader/config";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbCdEf";
const base = { TOKEN_SECRET_ARN: ARN, ALLOWED_PRINCIPALS: "111111111111", AWS_REGION: "eu-west-1" };

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadReadTokenConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadReadTokenConfig", () => {
  it("reads the settings with defaults; regions are own, fallbacks, then primary", () => {
    const config = loadReadTokenConfig({ ...base, FALLBACK_REGIONS: "eu-central-1, us-east-1" });
    expect(config.secret).toMatchObject({ arn: ARN, region: "us-east-1", name: "buildkite/agent-token" });
    expect(config.regions).toEqual(["eu-west-1", "eu-central-1", "us-east-1"]);
    expect(config.cacheMaxAgeSeconds).toBe(60);
    expect(config.maxStaleSeconds).toBe(300);
    expect([...config.allowed.accounts]).toEqual(["111111111111"]);
  });

  it("reads from the primary alone when the function runs there", () => {
    expect(loadReadTokenConfig({ ...base, AWS_REGION: "us-east-1" }).regions).toEqual(["us-east-1"]);
  });

  it.each([
    [{ TOKEN_SECRET_ARN: undefined }, "TOKEN_SECRET_ARN"],
    [{ TOKEN_SECRET_ARN: "buildkite/agent-token" }, "TOKEN_SECRET_ARN"],
    [{ ALLOWED_PRINCIPALS: "" }, "ALLOWED_PRINCIPALS"],
    [{ ALLOWED_PRINCIPALS: "12345" }, "ALLOWED_PRINCIPALS"],
    [{ ALLOWED_PRINCIPALS: "arn:aws:iam::111111111111:user/alice" }, "ALLOWED_PRINCIPALS"],
    [{ ALLOWED_PRINCIPALS: " , " }, "ALLOWED_PRINCIPALS"],
    [{ CACHE_MAX_AGE_SECONDS: "soon" }, "CACHE_MAX_AGE_SECONDS"],
    [{ CACHE_MAX_AGE_SECONDS: "99999" }, "CACHE_MAX_AGE_SECONDS"],
    [{ MAX_STALE_SECONDS: "-1" }, "MAX_STALE_SECONDS"],
    [{ FALLBACK_REGIONS: "us-east-1,mars" }, "FALLBACK_REGIONS"],
  ])("names the variable: %o", (override, variable) => {
    const error = configError({ ...base, ...override });
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}:`)).toBe(true);
  });
});
