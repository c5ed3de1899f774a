import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, type Template, transformTemplate } from "../support/cloudformation";

/**
 * The README's policies and its Elastic CI Stack instructions, against what exists:
 * - every ```json block parses; in a policy, every principal is a placeholder `<Name>` for a
 *   parameter or output of this project's stacks (roles the stacks create or take as
 *   parameters), or a service principal those stacks use; `"*"` only in a Deny;
 * - every Elastic CI Stack parameter the deploy section names is one of the stack's v6.71
 *   parameters (test/support/data/, vendored from buildkite/elastic-ci-stack-for-aws).
 */
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const ELASTIC_PARAMETERS = new Set(
  readFileSync(join(ROOT, "test/support/data/elastic-ci-stack-v6.71.1-parameters.txt"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#")),
);
/**
 * Names from the same templates/aws-stack.yml (v6.71.1) that are not parameters: its outputs
 * `InstanceRoleName` and `AutoScalingGroupName`, and the nested scaler application's logical ids
 * `Autoscaling` / `AutoscalingArm64`.
 */
const ELASTIC_OTHER_NAMES = new Set([
  "InstanceRoleName",
  "AutoScalingGroupName",
  "Autoscaling",
  "AutoscalingArm64",
]);

const stacks: Template[] = [
  transformTemplate(),
  transformTemplate(undefined, join(ROOT, "infra/forwarder.yaml")),
];
const ownNames = new Set(
  stacks.flatMap((t) => [...Object.keys(t.Parameters ?? {}), ...Object.keys(t.Outputs ?? {})]),
);
/** Service principals the stacks' own resources name (trust policies, permissions, topic policy). */
const ownServices = new Set(
  stacks.flatMap((t) =>
    [...JSON.stringify(t.Resources).matchAll(/"([a-z0-9-]+\.amazonaws\.com)"/g)].map((m) => m[1] ?? ""),
  ),
);

type Policy = { Statement?: Array<Record<string, unknown>> };
const values = (v: unknown): string[] => (v === undefined ? [] : [v].flat().map(String));

function policyProblems(readme: string): string[] {
  const problems: string[] = [];
  const blocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  if (blocks.length === 0) problems.push("no JSON policy in the README");
  for (const [i, block] of blocks.entries()) {
    let doc: Policy;
    try {
      doc = JSON.parse(block) as Policy;
    } catch (error) {
      problems.push(`JSON block ${i + 1} does not parse: ${(error as Error).message}`);
      continue;
    }
    for (const s of doc.Statement ?? []) {
      const principal = s.Principal as { AWS?: unknown; Service?: unknown } | string | undefined;
      const conditions = Object.values((s.Condition ?? {}) as Record<string, Record<string, unknown>>);
      const arns = [
        ...(typeof principal === "object" ? values(principal.AWS) : []),
        ...conditions.flatMap((c) => values(c["aws:PrincipalArn"])),
      ];
      if (principal === "*" && s.Effect !== "Deny")
        problems.push(`block ${i + 1}: "*" principal in an Allow`);
      for (const arn of arns) {
        const name = /^<([A-Za-z0-9]+)>$/.exec(arn)?.[1];
        if (!name || !ownNames.has(name)) {
          problems.push(
            `block ${i + 1}: principal ${arn} is neither created by the stacks nor one of their parameters`,
          );
        }
      }
      for (const service of typeof principal === "object" ? values(principal.Service) : []) {
        if (!ownServices.has(service))
          problems.push(`block ${i + 1}: service principal ${service} is not used by the stacks`);
      }
    }
  }
  return problems;
}

function section(readme: string, heading: string): string {
  const start = readme.indexOf(`${heading}\n`);
  if (start < 0) throw new Error(`README has no ${heading}`);
  const next = readme.indexOf("\n## ", start + heading.length);
  return readme.slice(start, next < 0 ? undefined : next);
}

function elasticStackProblems(readme: string): string[] {
  const problems: string[] = [];
  const deploy = section(readme, "## Deploy");
  const elastic = section(deploy, "### What the Elastic CI Stack needs");
  const table = [...elastic.matchAll(/^\| `([A-Za-z0-9]+)` \|/gm)].map((m) => m[1] ?? "");
  if (table.length < 4) problems.push("the Elastic CI Stack table names fewer than 4 parameters");
  for (const name of table) {
    if (!ELASTIC_PARAMETERS.has(name))
      problems.push(`${name} (table) is not an Elastic CI Stack v6.71 parameter`);
  }
  for (const m of deploy.matchAll(/`([A-Z][A-Za-z0-9]+)(?:=[^`]*)?`/g)) {
    const name = m[1] ?? "";
    // Capabilities, AWS names, single letters (prompt answers) and the Makefile are not parameters.
    if (/^(CAPABILITY_|AWS)/.test(name) || /^[A-Z_]+$/.test(name) || name === "Makefile") continue;
    if (!ELASTIC_PARAMETERS.has(name) && !ELASTIC_OTHER_NAMES.has(name) && !ownNames.has(name)) {
      problems.push(`${name} is neither an Elastic CI Stack v6.71 name nor one of this project's`);
    }
  }
  return problems;
}

describe("the README's policies and Elastic CI Stack instructions", () => {
  it("every JSON policy parses and names only principals the stacks create or take as parameters", () => {
    expect(policyProblems(README)).toEqual([]);
  });

  it("every Elastic CI Stack name it uses exists in the stack's v6.71 template", () => {
    expect(ELASTIC_PARAMETERS.size).toBe(125);
    expect(elasticStackProblems(README)).toEqual([]);
  });

  it("fails on a principal the stacks do not own, a broken policy, or a misspelt parameter", () => {
    const pattern = README.replace(
      '"<RotateTokenFunctionRoleArn>"',
      '"arn:aws:iam::111122223333:role/bk-RotateTokenFunctionRole-*"',
    );
    expect(pattern).not.toBe(README);
    expect(policyProblems(pattern)).toEqual([
      expect.stringContaining("role/bk-RotateTokenFunctionRole-* is neither"),
    ]);
    expect(
      policyProblems(README.replace('"Sid": "NobodyElseReadsTheAgentToken",', '"Sid": "NobodyElse",,')),
    ).toEqual([expect.stringContaining("does not parse")]);
    const misspelt = README.replace("| `ScalerManagedPolicyARNs` |", "| `ScalerManagedPolicyArns` |");
    expect(misspelt).not.toBe(README);
    expect(elasticStackProblems(misspelt)).toEqual(
      expect.arrayContaining(["ScalerManagedPolicyArns (table) is not an Elastic CI Stack v6.71 parameter"]),
    );
  });
});
