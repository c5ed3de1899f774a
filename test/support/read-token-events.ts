import type { LambdaFunctionURLEventWithIAMAuthorizer } from "aws-lambda";

/** A function URL (payload 2.0) event as Lambda sends it for AWS_IAM auth. */
export function urlEvent(
  iam: Partial<LambdaFunctionURLEventWithIAMAuthorizer["requestContext"]["authorizer"]["iam"]> | null,
  method = "GET",
): LambdaFunctionURLEventWithIAMAuthorizer {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: "/",
    rawQueryString: "",
    headers: { host: "abc.lambda-url.us-east-1.on.aws" },
    isBase64Encoded: false,
    requestContext: {
      accountId: "123456789012",
      apiId: "abc",
      domainName: "abc.lambda-url.us-east-1.on.aws",
      domainPrefix: "abc",
      requestId: "req-1",
      routeKey: "$default",
      stage: "$default",
      time: "22/Nov/2026:00:00:00 +0000",
      timeEpoch: 0,
      http: { method, path: "/", protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: "test" },
      authorizer: (iam === null
        ? undefined
        : {
            iam: {
              accessKey: "ASIAEXAMPLE",
              accountId: "",
              callerId: "AROAEXAMPLE:session",
              cognitoIdentity: null,
              principalOrgId: "o-example",
              userArn: "",
              userId: "AROAEXAMPLE:session",
              ...iam,
            },
          }) as LambdaFunctionURLEventWithIAMAuthorizer["requestContext"]["authorizer"],
    },
  };
}

export const assumedRole = (account: string, role: string, session = "i-0123456789abcdef0") => ({
  accountId: account,
  userArn: `arn:aws:sts::${account}:assumed-role/${role}/${session}`,
});
