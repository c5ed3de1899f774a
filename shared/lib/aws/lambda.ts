import { LambdaClient } from "@aws-sdk/client-lambda";
import { awsClientOptions, perRegion } from "./client-options";

export type { LambdaClient };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const lambdaClients = () => perRegion((region) => new LambdaClient(awsClientOptions(region)));
