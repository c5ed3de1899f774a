/** An EC2 API error: code and message as EC2 returns them in `<Response><Errors><Error>`. */
export class Ec2Error extends Error {
  override readonly name = "Ec2Error";

  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
  }
}
