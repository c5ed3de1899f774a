import { describe, expect, it } from "vitest";
import { embedDocument } from "../../../../infra/ssm/embed-document";

const template = (content: string) =>
  [
    "Resources:",
    "  Other:",
    "    Type: AWS::SNS::Topic",
    "",
    "  InstallAgentTokenDocument:",
    "    Type: AWS::SSM::Document",
    "    Properties:",
    "      Name: x",
    "      Content:",
    content,
    "",
    "Outputs:",
    "  A:",
    "    Value: b",
  ].join("\n");

describe("embedDocument", () => {
  it("replaces the resource's Content with the document, indented, and nothing else", () => {
    const old = [
      "        schemaVersion: '2.2'",
      "        mainSteps:",
      "          - a: |",
      "              old",
      "",
      "              text",
    ].join("\n");
    const document = 'schemaVersion: "2.2"\nmainSteps:\n  - run: |\n      new\n\n      lines\n';
    const expected = template(
      [
        '        schemaVersion: "2.2"',
        "        mainSteps:",
        "          - run: |",
        "              new",
        "",
        "              lines",
      ].join("\n"),
    );
    expect(embedDocument(template(old), document)).toBe(expected);
    expect(embedDocument(expected, document)).toBe(expected);
  });

  it("refuses a template without the resource", () => {
    expect(() => embedDocument("Resources: {}\n", "x: 1\n")).toThrow(/InstallAgentTokenDocument/);
  });
});
