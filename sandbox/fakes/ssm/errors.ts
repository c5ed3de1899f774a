/**
 * An error the stand-in answers with in the AWS JSON 1.1 shape: HTTP status plus
 * `{"__type": "<name>", "message": "..."}`, which the SDK turns into the modelled exception
 * (InvalidInstanceId, InvalidCommandId, ThrottlingException, ...).
 * (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html#operation-error-serialization)
 */
export class SsmError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
    this.name = type;
  }
}

/** The ValidationException text AWS uses for a member outside its documented range. */
export function validationError(member: string, value: unknown, constraint: string): SsmError {
  return new SsmError(
    "ValidationException",
    `1 validation error detected: Value '${String(value)}' at '${member}' failed to satisfy constraint: ${constraint}`,
  );
}
