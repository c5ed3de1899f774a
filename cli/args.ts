import { type ParseArgsConfig, parseArgs } from "node:util";
import { InputError } from "../shared/errors";

/** Bad command-line usage: exit code 2 and a hint to run --help. */
export class UsageError extends InputError {
  override name = "UsageError";
}

type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** Options every token-reading command accepts. */
export const COMMON_OPTIONS = {
  "secret-id": { type: "string" },
  source: { type: "string" },
  region: { type: "string" },
  "fallback-region": { type: "string", multiple: true },
  "version-stage": { type: "string" },
  "assume-role": { type: "string" },
  "role-session-name": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpec;

export const COMMON_HELP = `Common options:
  --secret-id ID            secret name or ARN (default: $BUILDKITE_AGENT_TOKEN_SECRET_ID)
  --source KIND             secretsmanager (default) or ssm (/aws/reference/secretsmanager/<name>)
  --region REGION           region to read first (default: $AWS_REGION, $AWS_DEFAULT_REGION,
                            or the region of an ARN)
  --fallback-region LIST    regions to try next, in order (repeatable or comma-separated);
                            the region of an ARN is always tried last
  --version-stage STAGE     staging label to read (default: AWSCURRENT)
  --assume-role ARN         assume this role first (credentials from the SDK chain:
                            environment, AWS_PROFILE, instance or container role)
  --role-session-name NAME  session name for --assume-role (default: bk-agent-token)
  -h, --help                show this help
`;

/** node:util parseArgs, strict, no positionals; its errors become UsageErrors. */
export function parseCommandArgs<const T extends OptionSpec>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** Repeatable and comma-separated values, flattened, trimmed, without duplicates. */
export function splitList(values: readonly string[] | string | undefined): string[] {
  const list = typeof values === "string" ? [values] : (values ?? []);
  return [
    ...new Set(
      list
        .flatMap((v) => v.split(","))
        .map((v) => v.trim())
        .filter(Boolean),
    ),
  ];
}
