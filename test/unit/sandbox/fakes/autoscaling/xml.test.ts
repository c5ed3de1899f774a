import { describe, expect, it } from "vitest";
import { escapeXml } from "../../../../../sandbox/fakes/autoscaling/xml";

describe("escapeXml", () => {
  it.each([
    [
      "plain text passes unchanged",
      "ci-linux i-0abc 2026-12-01T12:00:00.000Z",
      "ci-linux i-0abc 2026-12-01T12:00:00.000Z",
    ],
    ["markup characters become entities", `a&b<c>d"e'f`, "a&amp;b&lt;c&gt;d&quot;e&apos;f"],
    ["a carriage return survives as a character reference", "a\rb", "a&#13;b"],
    ["tab and line feed are XML characters", "a\tb\nc", "a\tb\nc"],
    ["a control character is not", "a\u0001b", "a\uFFFDb"],
    ["a pair of surrogates (one character) is kept", "ok 🚀", "ok 🚀"],
    ["a lone surrogate is replaced", "a\ud800b", "a\uFFFDb"],
    ["U+FFFE and U+FFFF are not XML characters", "a\ufffeb\uffff", "a\uFFFDb\uFFFD"],
  ])("%s", (_, text, expected) => {
    expect(escapeXml(text)).toBe(expected);
  });
});
