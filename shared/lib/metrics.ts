import { writeLine } from "./log";

/**
 * CloudWatch embedded metric format: a log line that CloudWatch turns into metrics, so no
 * PutMetricData call (and no extra IAM) is needed. Values are numbers only — never tokens.
 */
export type MetricUnit = "Seconds" | "Milliseconds" | "Count" | "None";

export const METRICS_NAMESPACE = "BuildkiteAgentTokenRotation";

export interface MetricsSink {
  put(name: string, value: number, unit: MetricUnit, dimensions?: Record<string, string>): void;
}

export function createMetrics(service: string, namespace = METRICS_NAMESPACE): MetricsSink {
  return {
    put(name, value, unit, dimensions = {}) {
      const dims = { Service: service, ...dimensions };
      const line = {
        _aws: {
          Timestamp: Date.now(),
          CloudWatchMetrics: [
            { Namespace: namespace, Dimensions: [Object.keys(dims)], Metrics: [{ Name: name, Unit: unit }] },
          ],
        },
        ...dims,
        [name]: value,
      };
      writeLine(JSON.stringify(line));
    },
  };
}
