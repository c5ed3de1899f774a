/**
 * An error the stand-in reports to the caller the way EC2 Auto Scaling does: a Query-protocol
 * error code (e.g. `ValidationError`, `InstanceRefreshInProgress`) plus a message. The fleet
 * throws these so that API semantics live with the simulation; the HTTP layer only encodes them.
 */
export class AutoScalingError extends Error {
  override readonly name = "AutoScalingError";

  constructor(
    readonly code: string,
    message: string,
    /** 4xx errors are the caller's fault (`Sender`); the SDK retries 5xx ones (`Receiver`). */
    readonly httpStatus = 400,
  ) {
    super(message);
  }

  get type(): "Sender" | "Receiver" {
    return this.httpStatus >= 500 ? "Receiver" : "Sender";
  }
}

export function validationError(message: string): AutoScalingError {
  return new AutoScalingError("ValidationError", message);
}

/** AWS's wording for a missing group, shared by every operation that names one. */
export function groupNotFound(groupName: string): AutoScalingError {
  return validationError(`AutoScalingGroup name not found - ${groupName}`);
}
