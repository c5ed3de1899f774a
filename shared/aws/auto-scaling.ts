import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { awsClientOptions, perRegion } from "./client-options";

export type { AutoScalingClient };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const autoScalingClients = () =>
  perRegion((region) => new AutoScalingClient(awsClientOptions(region)));
