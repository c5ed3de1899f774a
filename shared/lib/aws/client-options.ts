/**
 * Options every AWS SDK client of ours gets: a bounded time for each request and the SDK's own
 * retries (standard mode: throttling and transient errors, with backoff). Endpoints are NOT set
 * here: the SDK reads AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, so the same code runs
 * against AWS, moto and the sandbox.
 */
export const awsClientOptions = (region: string) => ({
  region,
  maxAttempts: 3,
  // Without throwOnRequestTimeout the SDK only logs a warning when requestTimeout passes and keeps
  // waiting (@smithy/types HttpHandlerInitialization: "Without this setting, a breach of the
  // request timeout will be logged as a warning"): the bound would not bound anything.
  requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000, throwOnRequestTimeout: true },
});

/** A client per region, created on first use and reused for the life of the container. */
export function perRegion<T>(create: (region: string) => T): (region: string) => T {
  const clients = new Map<string, T>();
  return (region) => {
    let client = clients.get(region);
    if (!client) {
      client = create(region);
      clients.set(region, client);
    }
    return client;
  };
}
