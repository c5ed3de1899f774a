/**
 * Command documents the Run Command stand-in knows, parsed from their YAML, and the parameter
 * handling Systems Manager applies before it runs one: unknown names and values that break a
 * parameter's allowedPattern are refused (InvalidParameters), defaults fill the rest, and
 * `{{ Name }}` placeholders in the steps' inputs are replaced by the values.
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-syntax-data-elements-parameters.html)
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parse } from "yaml";
import type { Platform } from "../instances/instance-host";
import { SsmError } from "./errors";

export interface DocumentParameter {
  type: string;
  default?: string;
  allowedPattern?: string;
}

export interface DocumentStep {
  /** The step name: the CommandPlugin Name and GetCommandInvocation's PluginName. */
  name: string;
  action: "aws:runShellScript" | "aws:runPowerShellScript";
  /** From `precondition: { StringEquals: [platformType, X] }`; undefined runs everywhere. */
  platform: Platform | undefined;
  /** The runCommand lines joined by newlines, as SSM Agent writes them into its script file. */
  script: string;
  /** inputs.timeoutSeconds (the execution timeout); aws:runShellScript defaults to 3600. */
  timeoutSeconds: number;
}

export interface CommandDocument {
  name: string;
  /** The document's text as registered. */
  content: string;
  parameters: Record<string, DocumentParameter>;
  steps: DocumentStep[];
}

const DEFAULT_EXECUTION_TIMEOUT_SECONDS = 3600;

/** Parses a schemaVersion 2.2 command document (only what the stand-in needs). */
export function parseCommandDocument(name: string, content: string): CommandDocument {
  const doc = parse(content) as {
    schemaVersion?: unknown;
    parameters?: Record<string, { type?: unknown; default?: unknown; allowedPattern?: unknown }>;
    mainSteps?: Array<{
      action?: unknown;
      name?: unknown;
      precondition?: { StringEquals?: unknown };
      inputs?: { runCommand?: unknown; timeoutSeconds?: unknown };
    }>;
  };
  if (doc?.schemaVersion !== "2.2")
    throw new Error(`${name}: only schemaVersion 2.2 documents are supported`);
  const parameters: Record<string, DocumentParameter> = {};
  for (const [key, p] of Object.entries(doc.parameters ?? {})) {
    parameters[key] = {
      type: String(p.type ?? "String"),
      ...(p.default !== undefined ? { default: String(p.default) } : {}),
      ...(typeof p.allowedPattern === "string" ? { allowedPattern: p.allowedPattern } : {}),
    };
  }
  const steps = (doc.mainSteps ?? []).map((step): DocumentStep => {
    if (step.action !== "aws:runShellScript" && step.action !== "aws:runPowerShellScript") {
      throw new Error(`${name}: unsupported action ${String(step.action)}`);
    }
    const lines = step.inputs?.runCommand;
    if (!Array.isArray(lines)) throw new Error(`${name}: step ${String(step.name)} has no runCommand list`);
    const condition = step.precondition?.StringEquals;
    const platform =
      Array.isArray(condition) && condition[0] === "platformType" ? (condition[1] as Platform) : undefined;
    return {
      name: String(step.name),
      action: step.action,
      platform,
      script: lines.map(String).join("\n"),
      timeoutSeconds: Number(step.inputs?.timeoutSeconds ?? DEFAULT_EXECUTION_TIMEOUT_SECONDS),
    };
  });
  return { name, content, parameters, steps };
}

/** Loads a document from a YAML file; `name` defaults to the file name without its extension. */
export function loadCommandDocument(path: string, name?: string): CommandDocument {
  return parseCommandDocument(name ?? basename(path).replace(/\.ya?ml$/, ""), readFileSync(path, "utf8"));
}

/**
 * SendCommand's Parameters (name → list of values) checked against the document and completed with
 * defaults. Throws InvalidParameters as SendCommand does.
 */
export function resolveParameters(
  document: CommandDocument,
  given: Record<string, string[]> | undefined,
): Record<string, string> {
  const resolved: Record<string, string> = {};
  for (const [key, values] of Object.entries(given ?? {})) {
    const parameter = document.parameters[key];
    if (parameter === undefined) {
      throw new SsmError("InvalidParameters", `Parameter "${key}" is not defined in the document.`);
    }
    if (!Array.isArray(values) || values.length !== 1 || typeof values[0] !== "string") {
      throw new SsmError(
        "InvalidParameters",
        `Parameter "${key}" of type ${parameter.type} takes one value.`,
      );
    }
    resolved[key] = values[0];
  }
  for (const [key, parameter] of Object.entries(document.parameters)) {
    const value = resolved[key] ?? parameter.default;
    if (value === undefined) {
      throw new SsmError("InvalidParameters", `Parameter "${key}" is required.`);
    }
    if (parameter.allowedPattern !== undefined && !new RegExp(parameter.allowedPattern).test(value)) {
      throw new SsmError(
        "InvalidParameters",
        `Parameter "${key}" "${value}" failed to satisfy constraint: Member must satisfy regular expression pattern: ${parameter.allowedPattern}`,
      );
    }
    resolved[key] = value;
  }
  return resolved;
}

/** Replaces `{{ Name }}` (spaces optional) with the parameter's value, as SSM does before delivery. */
export function substituteParameters(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, key: string) => values[key] ?? whole);
}
