import type { Env } from "../../shared/lib/config";
import type { Logger } from "../../shared/lib/log";
import { type OptionSpec, type OptionValues, withOptions } from "../args";
import { cliLogger } from "../logger";
import type { CliIo, CommandRunner } from "../types";
import { type OperatorContext, type OperatorSettings, operatorContext, operatorSettings } from "./context";

/** How the clients are built: operatorContext, or a test's stand-in. */
export type OperatorContextBuilder = (
  settings: OperatorSettings,
  env: Env,
  logger: Logger,
) => Promise<OperatorContext>;

type OperatorValues = Parameters<typeof operatorSettings>[0];

/**
 * The configuration and clients for one operator run, from the common operator options, closed
 * when `use` is done (whatever it returns or throws) so the process can exit at once.
 */
export async function withOperatorContext(
  values: OperatorValues,
  io: CliIo,
  use: (ctx: OperatorContext) => Promise<number>,
  build: OperatorContextBuilder = operatorContext,
): Promise<number> {
  const ctx = await build(operatorSettings(values, io.env), io.env, cliLogger(io.env));
  try {
    return await use(ctx);
  } finally {
    ctx.dispose();
  }
}

/** An operator command: options parsed, --help answered, then `run` with the context. */
export function operatorCommand<const T extends OptionSpec>(
  options: T,
  help: string,
  run: (ctx: OperatorContext, values: OptionValues<T>, io: CliIo) => Promise<number>,
): CommandRunner {
  return {
    // Every operator command's spec spreads OPERATOR_OPTIONS; a generic spec's values cannot show it.
    run: withOptions(options, help, (values, io) =>
      withOperatorContext(values as OperatorValues, io, (ctx) => run(ctx, values, io)),
    ),
  };
}
