/**
 * An optional throttling profile for the Run Command stand-in: one token bucket per region (Systems
 * Manager's API quotas are per account and region, https://docs.aws.amazon.com/general/latest/gr/ssm.html),
 * refilled continuously. A request that finds the bucket empty is answered as AWS answers a throttled
 * call: HTTP 400 with `ThrottlingException` ("Rate exceeded"), which the SDK retries with backoff.
 */
import { SsmError } from "./errors";

export interface ThrottleProfile {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size (the burst). */
  burst: number;
  /** Which targets count (default: the Run Command operations the stand-in serves). */
  operations?: readonly string[];
}

export class RegionThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  throttled = 0;

  constructor(
    private readonly profile: ThrottleProfile,
    private readonly now: () => number = Date.now,
  ) {
    if (!(profile.ratePerSecond > 0) || !(profile.burst >= 1)) {
      throw new Error("throttle profile needs ratePerSecond > 0 and burst >= 1");
    }
  }

  applies(operation: string): boolean {
    return this.profile.operations === undefined || this.profile.operations.includes(operation);
  }

  /** Takes one token for `region` or throws ThrottlingException. */
  take(region: string): void {
    const now = this.now();
    const bucket = this.buckets.get(region) ?? { tokens: this.profile.burst, at: now };
    bucket.tokens = Math.min(
      this.profile.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * this.profile.ratePerSecond,
    );
    bucket.at = now;
    this.buckets.set(region, bucket);
    if (bucket.tokens < 1) {
      this.throttled++;
      throw new SsmError("ThrottlingException", "Rate exceeded", 400);
    }
    bucket.tokens -= 1;
  }
}
