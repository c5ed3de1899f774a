import { createReconcileHandler } from "../../functions/reconcile/handler";
import { createRotateTokenHandler } from "../../functions/rotate-token/handler";
import type { FunctionHandler } from "../../sandbox/world/world";

/**
 * New instances of the real handlers (as a new Lambda container would have): each builds its
 * configuration from the environment at its first invocation, so a test that starts a new world
 * (new ports, new secret ARNs) gets handlers that read that world's settings. No module resets.
 */
export async function freshHandlers(): Promise<{ rotateToken: FunctionHandler; reconcile: FunctionHandler }> {
  return { rotateToken: createRotateTokenHandler(), reconcile: createReconcileHandler() };
}
