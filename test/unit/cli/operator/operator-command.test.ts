import { describe, expect, it } from "vitest";
import type { OperatorContext, OperatorSettings } from "../../../../cli/operator/context";
import { OPERATOR_OPTIONS } from "../../../../cli/operator/context";
import { operatorCommand, withOperatorContext } from "../../../../cli/operator/operator-command";
import { fakeIo } from "../../../support/cli-io";

/** Only what withOperatorContext touches: the run under test never reads a client. */
function fakeContext(disposed: string[]): OperatorContext {
  return { dispose: () => disposed.push("disposed") } as unknown as OperatorContext;
}

describe("withOperatorContext", () => {
  it("builds the context from the operator options and disposes of it after a result or a throw", async () => {
    const disposed: string[] = [];
    const settings: OperatorSettings[] = [];
    const build = async (s: OperatorSettings) => {
      settings.push(s);
      return fakeContext(disposed);
    };
    const { io } = fakeIo({ AWS_REGION: "eu-west-1" });
    expect(await withOperatorContext({ function: "reconcile" }, io, async () => 3, build)).toBe(3);
    expect(settings).toEqual([{ functionName: "reconcile", region: "eu-west-1", assumeRole: undefined }]);
    await expect(
      withOperatorContext({}, io, async () => Promise.reject(new Error("boom")), build),
    ).rejects.toThrow("boom");
    expect(disposed).toEqual(["disposed", "disposed"]);
  });

  it("refuses bad operator options before any context is built", async () => {
    let built = 0;
    const build = async () => {
      built++;
      return fakeContext([]);
    };
    await expect(withOperatorContext({ region: "mars" }, fakeIo().io, async () => 0, build)).rejects.toThrow(
      /not an AWS region/,
    );
    expect(built).toBe(0);
  });
});

describe("operatorCommand", () => {
  it("answers --help without building a context", async () => {
    const command = operatorCommand(OPERATOR_OPTIONS, "OPERATOR HELP\n", async () => 1);
    const { io, out } = fakeIo();
    expect(await command.run(["--help"], io)).toBe(0);
    expect(out()).toBe("OPERATOR HELP\n");
  });
});
