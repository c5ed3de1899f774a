import { COMMON_HELP, COMMON_OPTIONS, parseCommandArgs } from "../args";
import { cliLogger } from "../logger";
import type { Command } from "../types";
import { awsContext, readerSettings, requireSecretId } from "./aws";

const HELP = `Usage: bk-agent-token token [options]

Print the agent token to stdout, followed by a newline, and nothing else; diagnostics go to
stderr. For boot scripts: TOKEN="$(bk-agent-token token --region "$REGION")"

Options:
  -n, --no-newline          print the token without a trailing newline
${COMMON_HELP}`;

export const tokenCommand: Command = {
  summary: "print the agent token to stdout (nothing else)",
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      ...COMMON_OPTIONS,
      "no-newline": { type: "boolean", short: "n" },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
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
  },
};
