import { chmod, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { consumerCli } from "../../../support/consumer-cli";

/** `bk-agent-token write-config` (cli/consumer/write-config.ts), the real bundle against moto. */
const h = consumerCli();

describe("bk-agent-token write-config", () => {
  it("replaces the token line atomically with mode 0600 and keeps every other line", async () => {
    const file = join(h.dir, "buildkite-agent.cfg");
    const before = [
      "# The agent config",
      'name="%hostname-%spawn"',
      'token="old-token-value"',
      "# token=commented-out",
      'tags="queue=default"',
      'token="duplicate"',
      "",
    ].join("\n");
    await writeFile(file, before);
    await chmod(file, 0o644);
    const run = await h.cli(["write-config", "--file", file, "--secret-id", h.secret.name]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(run.stderr).not.toContain(h.secret.token);
    expect(await readFile(file, "utf8")).toBe(
      [
        "# The agent config",
        'name="%hostname-%spawn"',
        `token="${h.secret.token}"`,
        "# token=commented-out",
        'tags="queue=default"',
        "",
      ].join("\n"),
    );
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(h.dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("creates a missing config file with the token line", async () => {
    const file = join(h.dir, "new-agent.cfg");
    const run = await h.cli(["write-config", "--file", file, "--secret-id", h.secret.arn]);
    expect(run.code).toBe(0);
    expect(await readFile(file, "utf8")).toBe(`token="${h.secret.token}"\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("leaves the file untouched when the token cannot be read", async () => {
    const file = join(h.dir, "untouched.cfg");
    await writeFile(file, 'token="keep-me"\n');
    const run = await h.cli(["write-config", "--file", file, "--secret-id", "no/such/secret"]);
    expect(run.code).toBe(1);
    expect(await readFile(file, "utf8")).toBe('token="keep-me"\n');
  });
});

h.noTokenOnStderr();
