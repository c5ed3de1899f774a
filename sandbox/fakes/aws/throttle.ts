/**
 * Throttling profiles for the sandbox's AWS stand-ins (Auto Scaling, Systems Manager): one token
 * bucket per region, refilled continuously, that a stand-in consults before it serves a call.
 *
 * Why per region and shared: AWS API request quotas are per account and per Region, and every
 * caller in the account draws from the same bucket. For Auto Scaling: "API calls can't exceed the
 * maximum allowed API request rate per AWS account and per AWS Region ... all Amazon EC2 Auto
 * Scaling API calls have a single, shared API limit"
 * (https://repost.aws/knowledge-center/autoscaling-api-calls-throttled); for Systems Manager,
 * https://docs.aws.amazon.com/general/latest/gr/ssm.html. The Elastic CI Stack's scaler Lambda
 * polls Auto Scaling in the same account and region every minute (and operators, consoles and other
 * tools call it too), so a profile can add a background rate of "other callers" that drains the
 * same bucket. That drain is computed from the elapsed time (a constant flow: other callers take a
 * token whenever one is there), not from timers, so it costs nothing between calls and is
 * deterministic under a fake clock.
 *
 * The bucket only decides; each stand-in answers a refused call in its own protocol (Auto Scaling:
 * Query `Throttling`, SSM: JSON `ThrottlingException`), both of which the SDK retries with backoff.
 */

export interface ThrottleProfile {
  /** Tokens added per second, per region. */
  ratePerSecond: number;
  /** Bucket size (the burst), per region. */
  burst: number;
  /** Which operations count (default: every operation the stand-in serves). */
  operations?: readonly string[];
  /** Tokens per second other callers in the account take from the same bucket (default 0). */
  otherCallersPerSecond?: number;
}

export class RegionThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Calls refused so far, over every region. */
  throttled = 0;
  /** Calls admitted so far, over every region. */
  admitted = 0;
  /** Every region's bucket is full at this instant (the other callers drain it from then on). */
  private readonly startedAt: number;

  constructor(
    private readonly profile: ThrottleProfile,
    private readonly now: () => number = Date.now,
  ) {
    if (!(profile.ratePerSecond > 0) || !(profile.burst >= 1)) {
      throw new Error("throttle profile needs ratePerSecond > 0 and burst >= 1");
    }
    const others = profile.otherCallersPerSecond ?? 0;
    if (!(others >= 0) || !Number.isFinite(others)) {
      throw new Error("throttle profile needs otherCallersPerSecond >= 0");
    }
    this.startedAt = now();
  }

  applies(operation: string): boolean {
    return this.profile.operations === undefined || this.profile.operations.includes(operation);
  }

  /** Tokens left in `region`'s bucket now (fractional). */
  tokens(region: string): number {
    return this.refill(region).tokens;
  }

  /** Takes one token for `region`: true when the call may proceed, false when it is throttled. */
  tryTake(region: string): boolean {
    const bucket = this.refill(region);
    if (bucket.tokens < 1) {
      this.throttled++;
      return false;
    }
    bucket.tokens -= 1;
    this.admitted++;
    return true;
  }

  private refill(region: string): { tokens: number; at: number } {
    const now = this.now();
    const bucket = this.buckets.get(region) ?? { tokens: this.profile.burst, at: this.startedAt };
    const seconds = Math.max(0, now - bucket.at) / 1000;
    // Refill and the other callers' drain are two constant flows over the interval, so the level
    // moves linearly at their difference and stops at the bucket's bounds.
    const net = this.profile.ratePerSecond - (this.profile.otherCallersPerSecond ?? 0);
    bucket.tokens = Math.min(this.profile.burst, Math.max(0, bucket.tokens + seconds * net));
    bucket.at = now;
    this.buckets.set(region, bucket);
    return bucket;
  }
}
