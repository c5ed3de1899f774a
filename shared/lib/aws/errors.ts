import type { ObservationError } from "../../rollout/types";
import { describeError } from "../errors";

/**
 * AWS answers that will not change by asking again: the thing is not there, or we may not see it.
 * Everything else (throttling, 5xx, timeouts, network errors) is transient.
 */
const DEFINITIVE =
  /^(ResourceNotFoundException|AccessDenied(Exception)?|UnauthorizedOperation|AuthorizationError|InvalidInstanceID\.NotFound|ValidationError|InvalidParameterValue|NotFoundException)$/;

export function observationError(error: unknown, what?: string): ObservationError {
  const e = describeError(error);
  const message = `${e.name}: ${e.message}`;
  return { message: what ? `${what}: ${message}` : message, definitive: DEFINITIVE.test(e.name) };
}
