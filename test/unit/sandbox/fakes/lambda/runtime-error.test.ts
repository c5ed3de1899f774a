import { describe, expect, it } from "vitest";
import { runtimeErrorReport } from "../../../../../sandbox/fakes/lambda/runtime-error";

describe("runtimeErrorReport", () => {
  it("reports an Error by its name and message, with the stack split into lines", () => {
    const error = new TypeError("bad input");
    const report = runtimeErrorReport(error);
    expect(report.errorType).toBe("TypeError");
    expect(report.errorMessage).toBe("bad input");
    expect(report.trace).toEqual(error.stack?.split("\n"));
  });

  it("treats an error-shaped object as an Error, and anything else by its type and text, without trace", () => {
    expect(runtimeErrorReport({ name: "Custom", message: "m", stack: "Custom: m\n  at x" })).toEqual({
      errorType: "Custom",
      errorMessage: "m",
      trace: ["Custom: m", "  at x"],
    });
    expect(runtimeErrorReport("just text")).toEqual({
      errorType: "string",
      errorMessage: "just text",
      trace: [],
    });
    expect(runtimeErrorReport(42)).toEqual({ errorType: "number", errorMessage: "42", trace: [] });
  });

  it("falls back to the runtime's own message when the value cannot even be read", () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error("no reading me");
        },
      },
    );
    expect(runtimeErrorReport(hostile)).toMatchObject({ errorType: "handled", trace: [] });
  });
});
