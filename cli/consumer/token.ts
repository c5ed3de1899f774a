import { helpText, type OptionSpec, PROGRAM, withOptions } from "../args";
import { cliLogger } from "../logger";
import type { Command } from "../types";
import { awsContext, COMMON_OPTIONS, readerSettings, requireSecretId } from "./aws";

const OPTIONS = {
  "no-newline": { type: "boolean", short: "n", help: "print the token without a trailing newline" },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpec;

const HELP = helpText(PROGRAM, {
  usage: "token [options]",
  description: `Print the agent token to stdout, followed by a newline, and nothing else; diagnostics go to
stderr. For boot scripts: TOKEN="$(bk-agent-token token --region "$REGION")"
`,
  options: OPTIONS,
});

export const tokenCommand: Command = {
  summary: "print the agent token to stdout (nothing else)",
  run: withOptions(OPTIONS, HELP, async (values, io) => {
    const settings = readerSettings(values, io.env);
    const secretId = requireSecretId(settings);
    const aws = awsContext(settings, cliLogger(io.env));
    try {
      const value = await aws.reader(secretId).read();
      io.stdout.write(values["no-newline"] ? value.token : `${value.token}\n`);
      return 0;
    } finally {
      aws.dispose();
    }
  }),
};
