import { readFileSync } from "node:fs";
import { parse, type Tags } from "yaml";

/**
 * CloudFormation YAML with its short-form intrinsics (`!Ref`, `!Sub`, `!If`, …) read as the long
 * forms (`{"Ref": …}`, `{"Fn::Sub": …}`), scalars, sequences and maps alike; `!GetAtt a.b` becomes
 * `["a", "b"]`. Enough for the tests to read this project's templates.
 */
const INTRINSICS = [
  "Ref",
  "Sub",
  "Join",
  "Split",
  "Select",
  "If",
  "GetAtt",
  "Equals",
  "Not",
  "Or",
  "And",
  "Condition",
];

const longForm = (name: string) => (value: unknown) => ({
  [name === "Ref" || name === "Condition" ? name : `Fn::${name}`]:
    name === "GetAtt" && typeof value === "string" ? value.split(".") : value,
});

const customTags = INTRINSICS.flatMap((name) => [
  { tag: `!${name}`, resolve: longForm(name) },
  { tag: `!${name}`, collection: "seq" as const, resolve: longForm(name) },
  { tag: `!${name}`, collection: "map" as const, resolve: longForm(name) },
]) as unknown as Tags;

/** The template at `path`, as plain data (the JSON round trip drops the YAML node types). */
export function readCloudFormationYaml<T>(path: string): T {
  return JSON.parse(JSON.stringify(parse(readFileSync(path, "utf8"), { customTags }))) as T;
}
