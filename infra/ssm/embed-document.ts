/**
 * Copies infra/ssm/install-agent-token.yaml (the canonical document) into the Content of the
 * InstallAgentTokenDocument resource of template.yaml and infra/forwarder.yaml, verbatim and
 * indented, so CloudFormation deploys exactly the tested text. Run after editing the document:
 *
 *   node --import tsx infra/ssm/embed-document.ts
 *
 * test/unit/infra/ssm/install-agent-token.test.ts fails while a copy differs.
 */
import { readFileSync, writeFileSync } from "node:fs";

const RESOURCE = "  InstallAgentTokenDocument:";
const CONTENT = "      Content:";
const INDENT = "        ";

/** `template` with the resource's Content block replaced by `document`, indented under it. */
export function embedDocument(template: string, document: string): string {
  const lines = template.split("\n");
  const resource = lines.indexOf(RESOURCE);
  if (resource < 0) throw new Error(`no "${RESOURCE.trim()}" resource`);
  const content = lines.findIndex((l, i) => i > resource && l === CONTENT);
  if (content < 0) throw new Error(`no Content under ${RESOURCE.trim()}`);
  let end = content + 1;
  while (end < lines.length && (lines[end] === "" || lines[end]?.startsWith(INDENT))) end++;
  // Trailing blank lines belong to what follows.
  while (end > content + 1 && lines[end - 1] === "") end--;
  const body = document
    .replace(/\n+$/, "")
    .split("\n")
    .map((l) => (l === "" ? "" : `${INDENT}${l}`));
  return [...lines.slice(0, content + 1), ...body, ...lines.slice(end)].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = new URL("../..", import.meta.url).pathname;
  const document = readFileSync(`${root}infra/ssm/install-agent-token.yaml`, "utf8");
  for (const file of ["template.yaml", "infra/forwarder.yaml"]) {
    const path = `${root}${file}`;
    writeFileSync(path, embedDocument(readFileSync(path, "utf8"), document));
  }
}
