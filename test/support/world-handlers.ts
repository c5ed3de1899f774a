import { vi } from "vitest";
import type { FunctionHandler } from "../../infra/sandbox/world";

/**
 * Fresh instances of the real handlers. Each caches its configuration at first invocation, so a
 * test that starts a new world (new ports, new secret ARNs) needs new module instances.
 */
export async function freshHandlers(): Promise<{ rotateToken: FunctionHandler; reconcile: FunctionHandler }> {
  vi.resetModules();
  const rotate = await import("../../functions/rotate-token/handler");
  const reconcile = await import("../../functions/reconcile/handler");
  return { rotateToken: rotate.handler, reconcile: reconcile.handler };
}
