import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SSMClient } from "@aws-sdk/client-ssm";
import { isRegionName, parseSecretIdArn } from "../../shared/lib/arn";
import { awsClientOptions, perRegion } from "../../shared/lib/aws/client-options";
import type { Env } from "../../shared/lib/config";
import type { Logger } from "../../shared/lib/log";
import { createTokenReader, type TokenReader } from "../../shared/token-reader/reader";
import { secretsManagerSource } from "../../shared/token-reader/secrets-manager-source";
import { TOKEN_SOURCES, type TokenSource } from "../../shared/token-reader/sources";
import { ssmReferenceSource } from "../../shared/token-reader/ssm-source";
import { HELP_OPTION, type OptionSpec, splitList, UsageError } from "../args";
import { assumeRole, assumeRoleOption, type RoleToAssume } from "../credentials";

/** Options every token-reading command accepts (the boot-time consumers: token, write-config, render). */
export const COMMON_OPTIONS = {
  "secret-id": {
    type: "string",
    value: "ID",
    help: "secret name or ARN (default: $BUILDKITE_AGENT_TOKEN_SECRET_ID)",
    section: "Common options",
  },
  source: {
    type: "string",
    value: "KIND",
    help: "secretsmanager (default) or ssm (/aws/reference/secretsmanager/<name>)",
    section: "Common options",
  },
  region: {
    type: "string",
    value: "REGION",
    help: "region to read first (default: $AWS_REGION, $AWS_DEFAULT_REGION,\nor the region of an ARN)",
    section: "Common options",
  },
  "fallback-region": {
    type: "string",
    multiple: true,
    value: "LIST",
    help: "regions to try next, in order (repeatable or comma-separated);\nthe region of an ARN is always tried last",
    section: "Common options",
  },
  "version-stage": {
    type: "string",
    value: "STAGE",
    help: "staging label to read (default: AWSCURRENT)",
    section: "Common options",
  },
  "assume-role": {
    type: "string",
    value: "ARN",
    help: "assume this role first (credentials from the SDK chain:\nenvironment, AWS_PROFILE, instance or container role)",
    section: "Common options",
  },
  "role-session-name": {
    type: "string",
    value: "NAME",
    help: "session name for --assume-role (default: bk-agent-token)",
    section: "Common options",
  },
  help: { ...HELP_OPTION.help, section: "Common options" },
} as const satisfies OptionSpec;

/** The common options, validated: what every token-reading command needs to build its clients. */
export interface ReaderSettings {
  secretId: string | undefined;
  source: TokenSource;
  /** --region then --fallback-region, in order; may be empty when only ARNs will be read. */
  regions: string[];
  versionStage: string;
  assumeRole: RoleToAssume | undefined;
}

type CommonValues = {
  [K in keyof typeof COMMON_OPTIONS]?: (typeof COMMON_OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof COMMON_OPTIONS)[K] extends { type: "boolean" }
      ? boolean
      : string;
};

const STAGE = /^[\w-]{1,256}$/;

export function readerSettings(values: CommonValues, env: Env): ReaderSettings {
  const secretId = values["secret-id"]?.trim() || env.BUILDKITE_AGENT_TOKEN_SECRET_ID?.trim() || undefined;
  const source = (values.source ?? "secretsmanager").trim();
  if (!(TOKEN_SOURCES as readonly string[]).includes(source)) {
    throw new UsageError(`--source must be ${TOKEN_SOURCES.join(" or ")}, got "${source}"`);
  }
  const first = values.region?.trim() || env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim();
  const regions = splitList([...(first ? [first] : []), ...(values["fallback-region"] ?? [])]);
  for (const r of regions) if (!isRegionName(r)) throw new UsageError(`"${r}" is not an AWS region name`);
  const versionStage = values["version-stage"]?.trim() || "AWSCURRENT";
  if (!STAGE.test(versionStage)) throw new UsageError("--version-stage must be a staging label");
  return {
    secretId,
    source: source as TokenSource,
    regions,
    versionStage,
    assumeRole: assumeRoleOption(values),
  };
}

export function requireSecretId(settings: ReaderSettings): string {
  if (!settings.secretId) {
    throw new UsageError("no secret: pass --secret-id or set BUILDKITE_AGENT_TOKEN_SECRET_ID");
  }
  return settings.secretId;
}

/** Regions to read `secretId` from: the configured order, then an ARN's own (primary) region. */
export function regionsFor(settings: ReaderSettings, secretId: string): string[] {
  const arnRegion = parseSecretIdArn(secretId)?.region;
  const regions = [...new Set([...settings.regions, ...(arnRegion ? [arnRegion] : [])])];
  if (regions.length === 0) {
    throw new UsageError("no region: pass --region, set AWS_REGION, or give the secret as an ARN");
  }
  return regions;
}

export interface AwsContext {
  secretsManager(region: string): SecretsManagerClient;
  ssm(region: string): SSMClient;
  /** A cached, single-flight reader for one secret with the command's settings. */
  reader(secretId: string): TokenReader;
  /** Close every client's connections so the process can exit at once. */
  dispose(): void;
}

/**
 * Clients for the CLI: credentials from the SDK's default chain (environment, AWS_PROFILE / shared
 * files, SSO, container or instance role), optionally wrapped in an STS AssumeRole. Endpoints come
 * from the standard settings (AWS_ENDPOINT_URL…) for every client, STS included.
 */
export function awsContext(settings: ReaderSettings, logger: Logger): AwsContext {
  const stsRegion = settings.regions[0] ?? parseSecretIdArn(settings.secretId ?? "")?.region;
  const credentials = settings.assumeRole ? assumeRole(settings.assumeRole, stsRegion) : undefined;
  const created: Array<{ destroy(): void }> = [];
  const track = <T extends { destroy(): void }>(client: T): T => {
    created.push(client);
    return client;
  };
  const options = (region: string) => ({
    ...awsClientOptions(region),
    ...(credentials ? { credentials } : {}),
  });
  const secretsManager = perRegion((region) => track(new SecretsManagerClient(options(region))));
  const ssm = perRegion((region) => track(new SSMClient(options(region))));
  return {
    secretsManager,
    ssm,
    reader: (secretId) =>
      createTokenReader({
        secretId,
        regions: regionsFor(settings, secretId),
        source: settings.source === "ssm" ? ssmReferenceSource(ssm) : secretsManagerSource(secretsManager),
        versionStage: settings.versionStage,
        logger,
      }),
    dispose: () => {
      for (const client of created) client.destroy();
    },
  };
}
