import { SNSClient } from "@aws-sdk/client-sns";
import { awsClientOptions, perRegion } from "./client-options";

export type { SNSClient };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const snsClients = () => perRegion((region) => new SNSClient(awsClientOptions(region)));
