import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { EC2Client } from "@aws-sdk/client-ec2";
import { IAMClient } from "@aws-sdk/client-iam";
import {
  GetFunctionConfigurationCommand,
  type GetFunctionConfigurationCommandOutput,
  LambdaClient,
} from "@aws-sdk/client-lambda";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { SSMClient } from "@aws-sdk/client-ssm";
import { STSClient } from "@aws-sdk/client-sts";
import { apiTokenLoaderForArn } from "../../shared/buildkite/api-token";
import type { BuildkiteClient } from "../../shared/buildkite/client";
import { buildkiteClientFromConfig } from "../../shared/buildkite/client-from-config";
import { isRegionName, parseServiceArn } from "../../shared/lib/arn";
import { awsClientOptions, perRegion } from "../../shared/lib/aws/client-options";
import { type Env, loadReconcileConfig, type ReconcileConfig } from "../../shared/lib/config";
import { AppError, ConfigError, describeError } from "../../shared/lib/errors";
import type { Logger } from "../../shared/lib/log";
import { collectStatus, type StatusDeps, type StatusReport } from "../../shared/rollout/status";
import { HELP_OPTION, type OptionSpec, UsageError } from "../args";
import { assumeRole, assumeRoleOption, type RoleToAssume } from "../credentials";

/**
 * Plumbing shared by the operator commands (status, preflight, rotate): where the configuration
 * comes from, and the clients built from it. The operator commands need exactly the reconcile
 * function's configuration contract (shared/lib/config.ts loadReconcileConfig), read either from the
 * deployed function (--function) or from the process environment.
 */

const CONFIGURATION = "Configuration (the reconcile function's settings)";
const AWS_OPTIONS = "AWS options";

/** The options of every operator command: where the configuration comes from, and AWS access. */
export const OPERATOR_OPTIONS = {
  function: {
    type: "string",
    value: "NAME|ARN",
    help: "read the deployed reconcile function's environment\n(lambda:GetFunctionConfiguration; region from the ARN or --region);\nwithout it, the process environment: ROTATION_SECRET_ARN,\nBUILDKITE_ORGANIZATION, BUILDKITE_CLUSTER_ID,\nBUILDKITE_API_TOKEN_SECRET_ARN, TARGET_GROUPS, REPLICA_REGIONS,\nREFRESH_*, ... (e.g. env $(cat reconcile.env) bk-agent-token status)",
    section: CONFIGURATION,
  },
  region: {
    type: "string",
    value: "REGION",
    help: "region of --function when it is a name (default: $AWS_REGION)",
    section: AWS_OPTIONS,
  },
  "assume-role": {
    type: "string",
    value: "ARN",
    help: "assume this role first (credentials from the SDK chain)",
    section: AWS_OPTIONS,
  },
  "role-session-name": {
    type: "string",
    value: "NAME",
    help: "session name for --assume-role (default: bk-agent-token)",
    section: AWS_OPTIONS,
  },
  help: { ...HELP_OPTION.help, section: AWS_OPTIONS },
} as const satisfies OptionSpec;

export const OPERATOR_SECTION_INTROS: Record<string, string> = {
  [CONFIGURATION]:
    "  The Buildkite API token is always read from BUILDKITE_API_TOKEN_SECRET_ARN, never from a flag.",
};

export interface OperatorSettings {
  functionName: string | undefined;
  region: string | undefined;
  assumeRole: RoleToAssume | undefined;
}

const FUNCTION_NAME = /^[\w-]{1,64}(:[\w$-]+)?$/;

/** The region of a Lambda function ARN (`function:name[:qualifier]`); undefined for anything else. */
function functionArnRegion(value: string): string | undefined {
  const arn = parseServiceArn(value, "lambda", true);
  const name = arn?.resource.startsWith("function:") ? arn.resource.slice("function:".length) : undefined;
  return name !== undefined && FUNCTION_NAME.test(name) ? arn?.region : undefined;
}

export function operatorSettings(
  values: { function?: string; region?: string; "assume-role"?: string; "role-session-name"?: string },
  env: Env,
): OperatorSettings {
  const functionName = values.function?.trim() || undefined;
  if (functionName && !functionArnRegion(functionName) && !FUNCTION_NAME.test(functionName)) {
    throw new UsageError("--function must be a Lambda function name or ARN");
  }
  const region =
    values.region?.trim() || env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || undefined;
  if (region && !isRegionName(region)) throw new UsageError(`"${region}" is not an AWS region name`);
  return { functionName, region, assumeRole: assumeRoleOption(values) };
}

/** The region to call Lambda in for --function: the ARN's own, else --region / AWS_REGION. */
export function functionRegion(settings: OperatorSettings): string {
  const fromArn = functionArnRegion(settings.functionName ?? "");
  const region = fromArn ?? settings.region;
  if (!region) {
    throw new UsageError(
      "no region for --function: give the function's ARN, pass --region or set AWS_REGION",
    );
  }
  return region;
}

export interface LoadedConfig {
  config: ReconcileConfig;
  /** Where it came from, for the operator: `function <arn>` or `environment`. */
  source: string;
}

/**
 * The reconcile configuration: from the deployed function's environment when --function is given,
 * else from `env`. Validation errors name the variable and the source.
 */
export async function loadOperatorConfig(
  settings: OperatorSettings,
  env: Env,
  lambda: (region: string) => LambdaClient,
): Promise<LoadedConfig> {
  if (!settings.functionName) {
    return {
      config: validate(env, "the environment; or pass --function <reconcile function>"),
      source: "environment",
    };
  }
  const region = functionRegion(settings);
  let out: GetFunctionConfigurationCommandOutput;
  try {
    out = await lambda(region).send(
      new GetFunctionConfigurationCommand({ FunctionName: settings.functionName }),
    );
  } catch (error) {
    const e = describeError(error);
    throw new AppError(
      `could not read the configuration of function ${settings.functionName} in ${region}: ${e.name}: ${e.message}`,
      { cause: error },
    );
  }
  const name = out.FunctionArn ?? settings.functionName;
  if (out.Environment?.Error) {
    // For example KMSAccessDeniedException: the environment is encrypted with a key we may not use.
    throw new AppError(
      `function ${name}: its environment cannot be read: ${out.Environment.Error.ErrorCode ?? "Error"}: ${out.Environment.Error.Message ?? ""}`.trim(),
    );
  }
  const variables = out.Environment?.Variables ?? {};
  return { config: validate(variables, `the environment of function ${name}`), source: `function ${name}` };
}

function validate(env: Env, where: string): ReconcileConfig {
  try {
    return loadReconcileConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new ConfigError(
        error.variable,
        `${error.message.slice(error.variable.length + 2)} (in ${where})`,
      );
    }
    throw error;
  }
}

/** Clients and the configuration every operator command works with. */
export interface OperatorContext {
  config: ReconcileConfig;
  source: string;
  secrets: (region: string) => SecretsManagerClient;
  autoScaling: (region: string) => AutoScalingClient;
  ec2: (region: string) => EC2Client;
  ssm: (region: string) => SSMClient;
  cloudFormation: (region: string) => CloudFormationClient;
  /** IAM is global: one client. */
  iam: () => IAMClient;
  sts: (region: string) => STSClient;
  sns: (region: string) => SNSClient;
  buildkite: BuildkiteClient;
  statusDeps(): StatusDeps;
  collect(): Promise<StatusReport>;
  /** Close every client's connections so the process can exit at once. */
  dispose(): void;
}

export interface OperatorFactories {
  lambda?: (region: string) => LambdaClient;
  now?: () => Date;
}

/**
 * Loads the configuration and builds the clients: credentials from the SDK's default chain,
 * optionally through an STS AssumeRole; endpoints from the standard settings (AWS_ENDPOINT_URL…),
 * so the same commands run against AWS and the sandbox.
 */
export async function operatorContext(
  settings: OperatorSettings,
  env: Env,
  logger: Logger,
  factories: OperatorFactories = {},
): Promise<OperatorContext> {
  const created: Array<{ destroy(): void }> = [];
  const track = <T extends { destroy(): void }>(client: T): T => {
    created.push(client);
    return client;
  };
  const dispose = () => {
    for (const client of created.splice(0)) client.destroy();
  };
  const stsRegion = settings.region ?? functionArnRegion(settings.functionName ?? "");
  const credentials = settings.assumeRole ? assumeRole(settings.assumeRole, stsRegion) : undefined;
  const options = (region: string) => ({
    ...awsClientOptions(region),
    ...(credentials ? { credentials } : {}),
  });
  const lambda = factories.lambda ?? perRegion((region) => track(new LambdaClient(options(region))));
  try {
    const { config, source } = await loadOperatorConfig(settings, env, lambda);
    const secrets = perRegion((region) => track(new SecretsManagerClient(options(region))));
    const autoScaling = perRegion((region) => track(new AutoScalingClient(options(region))));
    const ec2 = perRegion((region) => track(new EC2Client(options(region))));
    const ssm = perRegion((region) => track(new SSMClient(options(region))));
    const cloudFormation = perRegion((region) => track(new CloudFormationClient(options(region))));
    const iamClient = perRegion((region) => track(new IAMClient(options(region))));
    const iam = () => iamClient(config.secret.region);
    const sts = perRegion((region) => track(new STSClient(options(region))));
    const sns = perRegion((region) => track(new SNSClient(options(region))));
    const buildkite = buildkiteClientFromConfig(config.buildkite, {
      apiToken: apiTokenLoaderForArn(secrets, config.buildkite.apiTokenSecretArn),
      logger,
      retryLevel: "info",
    });
    const now = factories.now ?? (() => new Date());
    const statusDeps = (): StatusDeps => ({ config, secrets, autoScaling, ec2, ssm, buildkite, now });
    return {
      config,
      source,
      secrets,
      autoScaling,
      ec2,
      ssm,
      cloudFormation,
      iam,
      sts,
      sns,
      buildkite,
      statusDeps,
      collect: () => collectStatus(statusDeps()),
      dispose,
    };
  } catch (error) {
    dispose();
    throw error;
  }
}
