import { SSMClient } from "@aws-sdk/client-ssm";
import { awsClientOptions, perRegion } from "./client-options";

export type { SSMClient };

/** Factory by region, so replica regions are first-class (and each test can point anywhere). */
export const ssmClients = () => perRegion((region) => new SSMClient(awsClientOptions(region)));

/**
 * For SendCommand only: no SDK retry. SendCommand is not idempotent (every call creates a command),
 * so a retry after a lost response would double the work; the next reconcile run sees the command
 * in ListCommands instead and decides from that.
 */
export const ssmSendClients = () =>
  perRegion((region) => new SSMClient({ ...awsClientOptions(region), maxAttempts: 1 }));
