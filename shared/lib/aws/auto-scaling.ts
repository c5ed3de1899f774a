import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { awsClientOptions, perRegion } from "./client-options";

export type { AutoScalingClient };

/**
 * Factory by region, so replica regions are first-class (and each test can point anywhere).
 * Auto Scaling's request quota is one bucket per account and region, shared with every caller —
 * each Elastic CI Stack's scaler polls it too — so these clients use the SDK's adaptive retry mode
 * (client-side rate limiting that slows down on throttling responses, @smithy/util-retry
 * AdaptiveRetryStrategy) and a few more attempts: every Auto Scaling call we retry is a read, a tag
 * write, or a start that a throttle rejected before it ran.
 */
export const autoScalingClients = () =>
  perRegion(
    (region) => new AutoScalingClient({ ...awsClientOptions(region), retryMode: "adaptive", maxAttempts: 6 }),
  );

/**
 * For StartInstanceRefresh and TerminateInstanceInAutoScalingGroup only: no SDK retry. Neither is
 * idempotent (a retry after a lost response can start a second refresh once the first has ended,
 * or replace a second instance); the next run finds what the first call did (the refresh history
 * against our recorded intent, the group's instances) and decides from that.
 */
export const autoScalingStartClients = () =>
  perRegion((region) => new AutoScalingClient({ ...awsClientOptions(region), maxAttempts: 1 }));
