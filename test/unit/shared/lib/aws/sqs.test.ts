import { describe, expect, it } from "vitest";
import { MAX_RETRY_DELAY_SECONDS, retryDelaySeconds } from "../../../../../shared/lib/aws/sqs";

describe("retryDelaySeconds", () => {
  it("waits the base after the first receive and doubles per receive, up to 15 minutes", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map((n) => retryDelaySeconds(n, 30))).toEqual([
      30, 60, 120, 240, 480, 900, 900, 900,
    ]);
    expect(MAX_RETRY_DELAY_SECONDS).toBe(900);
  });

  it("sums to about 75 minutes over the nine retries of maxReceiveCount 10", () => {
    const total = [1, 2, 3, 4, 5, 6, 7, 8, 9].reduce((s, n) => s + retryDelaySeconds(n, 30), 0);
    expect(total).toBe(4530);
  });

  it("treats a missing or odd receive count as the first, and a zero base as at once", () => {
    expect(retryDelaySeconds(Number.NaN, 30)).toBe(30);
    expect(retryDelaySeconds(0, 30)).toBe(30);
    expect(retryDelaySeconds(1e9, 30)).toBe(900);
    expect(retryDelaySeconds(4, 0)).toBe(0);
  });
});
