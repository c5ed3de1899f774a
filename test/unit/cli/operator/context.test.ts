import { GetFunctionConfigurationCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { beforeEach, describe, expect, it } from "vitest";
import {
  functionRegion,
  loadOperatorConfig,
  operatorContext,
  operatorSettings,
} from "../../../../cli/operator/context";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import { createLogger } from "../../../../shared/lib/log";
import {
  OPERATOR_CONTRACT,
  OPERATOR_SECRET_ARN,
  operatorClientMocks,
} from "../../../support/operator-fixture";

const ARN = OPERATOR_SECRET_ARN;
const FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:bk-rotation-ReconcileFunction-1A2B3C";
const CONTRACT = OPERATOR_CONTRACT;
const logger = createLogger("test", {}, "error");

const { lambda } = operatorClientMocks();

describe("operator settings", () => {
  it("takes the region from the environment and validates every option", () => {
    expect(operatorSettings({}, { AWS_REGION: "eu-west-1" })).toEqual({
      functionName: undefined,
      region: "eu-west-1",
      assumeRole: undefined,
    });
    expect(
      operatorSettings(
        { function: "reconcile", region: "us-east-2", "assume-role": "arn:aws:iam::123456789012:role/ops" },
        {},
      ),
    ).toEqual({
      functionName: "reconcile",
      region: "us-east-2",
      assumeRole: { roleArn: "arn:aws:iam::123456789012:role/ops", sessionName: "bk-agent-token" },
    });
    expect(() => operatorSettings({ function: "not a function!" }, {})).toThrow(/--function/);
    expect(() => operatorSettings({ region: "mars" }, {})).toThrow(/not an AWS region/);
    expect(() => operatorSettings({ "assume-role": "ops" }, {})).toThrow(/--assume-role/);
    expect(() =>
      operatorSettings({ function: "arn:awsx:lambda:eu-west-1:123456789012:function:reconcile" }, {}),
    ).toThrow(/--function/);
  });

  it("calls Lambda in the function ARN's region, else --region", () => {
    expect(functionRegion({ functionName: FUNCTION_ARN, region: "us-east-1", assumeRole: undefined })).toBe(
      "eu-west-1",
    );
    expect(functionRegion({ functionName: "reconcile", region: "us-east-1", assumeRole: undefined })).toBe(
      "us-east-1",
    );
    expect(() =>
      functionRegion({ functionName: "reconcile", region: undefined, assumeRole: undefined }),
    ).toThrow(/no region for --function/);
  });
});

describe("loadOperatorConfig", () => {
  const regions: string[] = [];
  const factory = (region: string) => {
    regions.push(region);
    return new LambdaClient({ region });
  };
  beforeEach(() => {
    regions.length = 0;
  });

  it("reads the process environment without --function", async () => {
    const loaded = await loadOperatorConfig(operatorSettings({}, {}), CONTRACT, factory);
    expect(loaded.source).toBe("environment");
    expect(loaded.config).toEqual(loadReconcileConfig(CONTRACT));
    expect(regions).toEqual([]);
  });

  it("names the missing variable and where it looked", async () => {
    const { TARGET_GROUPS: _, ...partial } = CONTRACT;
    await expect(loadOperatorConfig(operatorSettings({}, {}), partial, factory)).rejects.toThrow(
      /^TARGET_STACKS: or TARGET_GROUPS is required: .* \(in the environment; or pass --function <reconcile function>\)$/,
    );
  });

  it("reads the deployed function's environment with GetFunctionConfiguration", async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({
      FunctionArn: FUNCTION_ARN,
      Environment: { Variables: { ...CONTRACT, LOG_LEVEL: "info" } },
    });
    const loaded = await loadOperatorConfig(
      operatorSettings({ function: FUNCTION_ARN }, { AWS_REGION: "us-east-1" }),
      {},
      factory,
    );
    expect(regions).toEqual(["eu-west-1"]);
    expect(lambda.commandCalls(GetFunctionConfigurationCommand)[0]?.args[0].input).toEqual({
      FunctionName: FUNCTION_ARN,
    });
    expect(loaded.source).toBe(`function ${FUNCTION_ARN}`);
    expect(loaded.config.targets).toEqual([
      { region: "us-east-1", groupName: "ci-a" },
      { region: "us-west-2", groupName: "ci-b" },
    ]);
  });

  it("ignores the process environment when --function is given, and names the function in errors", async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({
      FunctionArn: FUNCTION_ARN,
      Environment: { Variables: { ...CONTRACT, BUILDKITE_CLUSTER_ID: "x" } },
    });
    await expect(
      loadOperatorConfig(
        operatorSettings({ function: "reconcile" }, { AWS_REGION: "eu-west-1" }),
        CONTRACT,
        factory,
      ),
    ).rejects.toThrow(
      `BUILDKITE_CLUSTER_ID: must be the cluster UUID (in the environment of function ${FUNCTION_ARN})`,
    );
  });

  it("reports an environment Lambda cannot decrypt, and a failed call", async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({
      FunctionArn: FUNCTION_ARN,
      Environment: { Error: { ErrorCode: "KMSAccessDeniedException", Message: "no access to key" } },
    });
    await expect(
      loadOperatorConfig(operatorSettings({ function: FUNCTION_ARN }, {}), {}, factory),
    ).rejects.toThrow("its environment cannot be read: KMSAccessDeniedException: no access to key");
    lambda
      .on(GetFunctionConfigurationCommand)
      .rejects(Object.assign(new Error("Function not found"), { name: "ResourceNotFoundException" }));
    await expect(
      loadOperatorConfig(operatorSettings({ function: FUNCTION_ARN }, {}), {}, factory),
    ).rejects.toThrow(
      `could not read the configuration of function ${FUNCTION_ARN} in eu-west-1: ResourceNotFoundException: Function not found`,
    );
  });

  it("builds the operator context from a function's configuration", async () => {
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: CONTRACT } });
    const ctx = await operatorContext(operatorSettings({ function: FUNCTION_ARN }, {}), {}, logger);
    try {
      expect(ctx.source).toBe(`function ${FUNCTION_ARN}`);
      expect(ctx.config.secret.arn).toBe(ARN);
      expect(await ctx.secrets("us-west-2").config.region()).toBe("us-west-2");
      expect(ctx.secrets("us-west-2")).toBe(ctx.secrets("us-west-2"));
    } finally {
      ctx.dispose();
    }
  });
});
