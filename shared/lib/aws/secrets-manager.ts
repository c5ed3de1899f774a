import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { awsClientOptions, perRegion } from "./client-options";

export type { SecretsManagerClient };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const secretsManagerClients = () =>
  perRegion((region) => new SecretsManagerClient(awsClientOptions(region)));
