import { SSMClient } from "@aws-sdk/client-ssm";
import { awsClientOptions, perRegion } from "./client-options";

export type { SSMClient };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const ssmClients = () => perRegion((region) => new SSMClient(awsClientOptions(region)));
