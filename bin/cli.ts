/**
 * bk-agent-token: reads the Buildkite agent token for boot scripts and operators. A thin entry
 * point: the commands live in cli/ (registry.ts lists them).
 */
import { main } from "../cli/main";

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
