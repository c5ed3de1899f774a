/**
 * `npm run sandbox`: a whole rotation on one machine, no AWS account. See `--help`.
 *
 * The real handlers are imported statically: one world per process (they cache their
 * configuration and SDK clients at module level).
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { handler as reconcile } from "../functions/reconcile/handler";
import { handler as rotateToken } from "../functions/rotate-token/handler";
import { Interrupted, PROFILES, runScenario, type ScenarioIo, validateScenario } from "./scenario/scenario";
import { EXIT } from "./verdict/outcome";

export const USAGE = `Usage: npm run sandbox [-- options]

Runs the whole token rotation locally on a stock Elastic CI Stack fleet: moto server (Secrets
Manager, SSM, SNS, SQS), a local Buildkite API, and Linux and Windows Elastic CI Stacks in 3 regions
(every instance protected from scale-in, some running jobs) whose instances read the token at boot,
write it to their agent cfg and register with Buildkite; Auto Scaling, EC2, CloudFormation and SSM
Run Command stand-ins; the real rotate-token and reconcile handlers behind a local Lambda endpoint,
triggered as in AWS (rotate-secret → four steps → label event → reconcile → revoke). By default the
in-place strategy rewrites every cfg through Run Command (real bash and the AWS CLI for the Linux
step); in the last rotation one instance's SSM agent is offline at first and comes back, and the
retry reaches it. Shows live progress, then per rotation: instances replaced by the rollout, jobs
interrupted, promotion → revocation, failed registrations, and every safety invariant, checked
from what the local servers recorded.

Options:
  --quick                  a smaller, faster fleet (for CI); the Linux step runs the install
                           script's TypeScript mirror instead of bash and the AWS CLI
  --rotations N            rotations to run (default 2: the second revokes the first one's token;
                           the initial token was made by a human and is never revoked by the tool)
  --strategy S             in-place (default) or refresh: an instance refresh of every group with
                           ScaleInProtectedInstances=Refresh (replaces every instance, interrupts
                           the jobs running on them, and reports how many)
  --ssm-offline            in-place: the instance's SSM agent stays offline in the last rotation:
                           the rollout must block, alert once naming the instance, revoke nothing
  --churn                  light natural churn: idle agents in the replica regions terminate
                           themselves and the scaler replaces them (counted apart from the rollout)
  --fail-refresh REGION    every instance refresh in REGION fails during the last rotation (runs
                           the refresh strategy): the rollout must block, alert once, revoke nothing
  --replica-lag SECONDS    replication lag to every replica region (decimals allowed, up to 300);
                           longer than reconcile's per-run wait, the schedule finishes the job
  --buildkite-flaky        the Buildkite API answers 502/429 to ~15% of requests
  --keep                   after the scenario, keep everything running for the operator CLI:
                           writes the environment to a file and prints how to use it; Ctrl-C stops
  --env-out PATH           with --keep: where to write it (default: in the temp directory)
  --log-file PATH          where the handlers' JSON logs go (default: in the temp directory)
  --no-color               no ANSI colors (also when NO_COLOR is set or output is not a terminal)
  -h, --help               this help

Exit codes:
  0    every rotation rolled out completely and every safety invariant held
  1    a safety invariant was broken (each one is explained), or the sandbox could not run
       (for example moto is not installed: pip install "moto[server]")
  2    the rollout did not complete (e.g. --fail-refresh, --ssm-offline), every invariant intact:
       explained, and no token was revoked early
  3    rolled out completely despite an injected fault (--replica-lag, --buildkite-flaky):
       every invariant held, and the last line says what the fault did
  64   bad options
  130  interrupted (Ctrl-C; 143 for SIGTERM) after stopping everything it started; a second
       Ctrl-C exits at once
`;

const STRATEGIES = ["in-place", "refresh"] as const;

export interface MainIo extends ScenarioIo {
  error(text: string): void;
}

export async function main(
  argv: readonly string[],
  io: MainIo,
  env: NodeJS.ProcessEnv = process.env,
  signal?: AbortSignal,
): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (error) {
    io.error(`sandbox: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (values.help) {
    io.write(USAGE);
    return 0;
  }
  const lag = values["replica-lag"];
  const rotations = values.rotations;
  if (lag !== undefined && !/^\d+(\.\d+)?$/.test(lag)) {
    io.error(`sandbox: --replica-lag takes a number of seconds (e.g. 15 or 2.5), got "${lag}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (rotations !== undefined && !/^\d+$/.test(rotations)) {
    io.error(`sandbox: --rotations takes a whole number, got "${rotations}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  const strategyValue = values.strategy;
  const strategy = strategyValue === undefined ? undefined : STRATEGIES.find((s) => s === strategyValue);
  if (strategyValue !== undefined && strategy === undefined) {
    io.error(`sandbox: --strategy takes in-place or refresh, got "${strategyValue}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  const options = {
    profile: values.quick ? PROFILES.quick : PROFILES.default,
    ...(strategy === undefined ? {} : { strategy }),
    ...(values["ssm-offline"] ? { ssmOffline: true } : {}),
    ...(values.churn ? { churn: true } : {}),
    ...(rotations === undefined ? {} : { rotations: Number(rotations) }),
    ...(values["fail-refresh"] === undefined ? {} : { failRefreshRegion: values["fail-refresh"] }),
    ...(lag === undefined ? {} : { replicaLagSeconds: Number(lag) }),
    ...(values["buildkite-flaky"] ? { buildkiteFlaky: true } : {}),
    logFile: values["log-file"] ?? join(tmpdir(), "bk-agent-token-sandbox.log"),
    ...(values.keep
      ? { keepEnvFile: values["env-out"] ?? join(tmpdir(), "bk-agent-token-sandbox.env") }
      : {}),
    color: io.isTTY === true && !values["no-color"] && !env.NO_COLOR,
    ...(signal ? { signal } : {}),
  };
  const problem = validateScenario(options);
  if (problem) {
    io.error(`sandbox: ${problem}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const result = await runScenario({ ...options, handlers: { rotateToken, reconcile } }, io);
  return result.exitCode;
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: "boolean" },
      rotations: { type: "string" },
      "fail-refresh": { type: "string" },
      strategy: { type: "string" },
      "ssm-offline": { type: "boolean" },
      churn: { type: "boolean" },
      "replica-lag": { type: "string" },
      "buildkite-flaky": { type: "boolean" },
      "log-file": { type: "string" },
      keep: { type: "boolean" },
      "env-out": { type: "string" },
      "no-color": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

const isEntry =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"));

if (isEntry) {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (name: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      // The moto child is killed by its own exit hook.
      process.stderr.write(`\nsandbox: ${name} again: exiting now\n`);
      process.exit(name === "SIGTERM" ? 143 : EXIT.interrupted);
    }
    process.stderr.write(`\nsandbox: ${name}: stopping everything the sandbox started (again to force)…\n`);
    controller.abort(new Interrupted(name));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const io: MainIo = {
    write: (text) => process.stdout.write(text),
    error: (text) => process.stderr.write(text),
    isTTY: process.stdout.isTTY === true,
    columns: process.stdout.columns,
    rows: process.stdout.rows,
  };
  const code = await main(process.argv.slice(2), io, process.env, controller.signal).catch(
    (error: unknown) => {
      process.stderr.write(`sandbox: ${error instanceof Error ? error.message : String(error)}\n`);
      return EXIT.violation;
    },
  );
  process.exitCode = code;
  // Everything was stopped; a keep-alive socket of an SDK client must not hold the process open.
  setTimeout(() => process.exit(code), 2_000).unref();
}
