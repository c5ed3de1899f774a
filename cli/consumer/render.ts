import { readFile } from "node:fs/promises";
import { GetParameterCommand } from "@aws-sdk/client-ssm";
import { AppError } from "../../shared/lib/errors";
import { registerSecret } from "../../shared/lib/log";
import {
  type RegionFailure,
  readErrorMessage,
  regionFailure,
  TokenReadError,
} from "../../shared/token-reader/errors";
import { helpText, type OptionSpec, PROGRAM, UsageError, withOptions } from "../args";
import { cliLogger } from "../logger";
import type { CliIo, Command } from "../types";
import { checkWriteTarget, writeFileAtomic } from "./atomic-write";
import { type AwsContext, awsContext, COMMON_OPTIONS, readerSettings } from "./aws";

const OPTIONS = {
  template: { type: "string", value: "IN", help: "the template file" },
  out: { type: "string", value: "OUT", help: "the file to write, or - for standard output" },
  "follow-symlinks": {
    type: "boolean",
    help: "allow symbolic links in OUT (the file it points to is replaced)",
  },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpec;

const HELP = helpText(PROGRAM, {
  usage: "render --template IN --out OUT [options]",
  description: `Copy a template, replacing each reference with its value:
  {{ secret awsSecret://<secret name or ARN> }}  Secrets Manager (with --source, --version-stage
                                                 and region fallback, like the token command)
  {{ secret ssm://<parameter name> }}            Parameter Store, with decryption
  {{ secret env://<VARIABLE> }}                  an environment variable
Values are inserted as they are. Every reference is resolved before anything is written: an
unknown scheme, a malformed reference (including a tag that looks like one but does not parse,
such as {{ Secret ... }} or {{ secret x }}) or a value that cannot be read is an error naming the
reference, and OUT is left untouched. OUT is written atomically with mode 0600; like
write-config, only a regular file (or a missing one) in safe directories is written.

Templates are trusted input: a template can read any environment variable, any secret and any
parameter the credentials can read, and write it wherever OUT goes. Never render a template
someone else can write.
`,
  options: OPTIONS,
});

export type Scheme = "awsSecret" | "ssm" | "env";
export interface Reference {
  /** The reference as written, e.g. "awsSecret://buildkite/agent-token": safe to print. */
  ref: string;
  scheme: Scheme;
  id: string;
}

/** A template that cannot be rendered. The message names references, never values. */
export class RenderError extends AppError {
  override name = "RenderError";
}

const PLACEHOLDER = /\{\{\s*secret\s+([^\s{}]+)\s*\}\}/g;
const PLACEHOLDER_HERE = /\{\{\s*secret\s+([^\s{}]+)\s*\}\}/y;
/**
 * Anything that looks like a reference: `{{` then `secret`/`secrets` in any case, or a
 * `scheme://` inside the braces. Each must parse as PLACEHOLDER, or the template is refused: a
 * typo must not leave a literal tag where a secret was meant to go.
 */
const LOOKS_LIKE_TAG = /\{\{(?:\s*secrets?\b|[^{}\n]{0,200}?:\/\/)/gi;
const SCHEMES: Record<string, Scheme> = { awssecret: "awsSecret", ssm: "ssm", env: "env" };

export function parseReference(ref: string): Reference {
  const m = /^([A-Za-z][\w-]*):\/\/(.+)$/.exec(ref);
  const scheme = m ? SCHEMES[(m[1] ?? "").toLowerCase()] : undefined;
  if (!m || !scheme) {
    throw new RenderError(`unknown secret reference scheme in "${ref}" (use awsSecret://, ssm:// or env://)`);
  }
  const id = m[2] ?? "";
  if (scheme === "env" && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(id)) {
    throw new RenderError(`"${ref}" does not name an environment variable`);
  }
  return { ref, scheme, id };
}

/** Every distinct reference in the template, in order of first use; malformed tags are errors. */
export function findReferences(template: string): Reference[] {
  const refs = new Map<string, Reference>();
  const errors: string[] = [];
  for (const tag of template.matchAll(LOOKS_LIKE_TAG)) {
    PLACEHOLDER_HERE.lastIndex = tag.index;
    const m = PLACEHOLDER_HERE.exec(template);
    if (!m) {
      const line = template.slice(0, tag.index).split("\n").length;
      errors.push(
        `malformed tag on line ${line} (a reference is written {{ secret <scheme>://<id> }}, lower case)`,
      );
      if (errors.length >= 20) break;
      continue;
    }
    const ref = m[1] ?? "";
    if (refs.has(ref)) continue;
    try {
      refs.set(ref, parseReference(ref));
    } catch (error) {
      errors.push(error instanceof Error ? error.message : String(error));
    }
  }
  if (errors.length > 0) throw new RenderError(errors.join("; "));
  return [...refs.values()];
}

export function renderTemplate(template: string, values: ReadonlyMap<string, string>): string {
  return template.replace(PLACEHOLDER, (_whole, ref: string) => {
    const value = values.get(ref);
    if (value === undefined) throw new RenderError(`no value for "${ref}"`);
    return value;
  });
}

async function readParameter(aws: AwsContext, regions: readonly string[], name: string): Promise<string> {
  const failures: RegionFailure[] = [];
  for (const region of regions) {
    try {
      const out = await aws.ssm(region).send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      const value = out.Parameter?.Value;
      if (value === undefined) throw new RenderError(`parameter ${name} has no value`);
      return value;
    } catch (error) {
      failures.push(regionFailure(region, error));
    }
  }
  throw new TokenReadError(name, failures, { subject: "parameter" });
}

async function resolveReference(reference: Reference, aws: AwsContext, io: CliIo, regions: () => string[]) {
  switch (reference.scheme) {
    case "env": {
      const value = io.env[reference.id];
      if (value === undefined || value === "") {
        throw new RenderError(`environment variable ${reference.id} is not set`);
      }
      return value;
    }
    case "ssm":
      return readParameter(aws, regions(), reference.id);
    case "awsSecret":
      return (await aws.reader(reference.id).read()).token;
  }
}

export const renderCommand: Command = {
  summary: "render a template with {{ secret awsSecret://… | ssm://… | env://… }} references",
  run: withOptions(OPTIONS, HELP, async (values, io) => {
    const templatePath = values.template?.trim();
    const outPath = values.out?.trim();
    if (!templatePath) throw new UsageError("--template IN is required");
    if (!outPath) throw new UsageError("--out OUT is required");
    const settings = readerSettings(values, io.env);
    const toStdout = outPath === "-";
    const safety = { followSymlinks: values["follow-symlinks"] === true };
    // Refuse an unsafe OUT before reading any secret.
    if (!toStdout) await checkWriteTarget(outPath, safety);
    const template = await readFile(templatePath, "utf8");
    const references = findReferences(template);
    const aws = awsContext(settings, cliLogger(io.env));
    try {
      const settled = await Promise.allSettled(
        references.map((r) =>
          resolveReference(r, aws, io, () => {
            if (settings.regions.length === 0) {
              throw new UsageError("no region: pass --region or set AWS_REGION");
            }
            return settings.regions;
          }),
        ),
      );
      const resolved = new Map<string, string>();
      const failed: string[] = [];
      settled.forEach((result, i) => {
        const reference = references[i];
        if (!reference) return;
        if (result.status === "fulfilled") {
          registerSecret(result.value);
          resolved.set(reference.ref, result.value);
        } else {
          if (result.reason instanceof UsageError) throw result.reason;
          failed.push(`${reference.ref}: ${readErrorMessage(result.reason)}`);
        }
      });
      if (failed.length > 0) {
        throw new RenderError(
          `could not resolve ${failed.length} reference(s); ${outPath} was not written: ${failed.join("; ")}`,
        );
      }
      const rendered = renderTemplate(template, resolved);
      if (toStdout) {
        io.stdout.write(rendered);
        io.stderr.write(
          `bk-agent-token: rendered ${references.length} reference(s) from ${templatePath} to standard output\n`,
        );
        return 0;
      }
      const written = await writeFileAtomic(outPath, rendered, 0o600, safety);
      io.stderr.write(
        `bk-agent-token: rendered ${references.length} reference(s) from ${templatePath} to ${written.path}\n`,
      );
      return 0;
    } finally {
      aws.dispose();
    }
  }),
};
