/**
 * How the handlers are wired into the world: the local Lambda running rotate-token and reconcile,
 * the event bus standing for the EventBridge rules that trigger reconcile (as asynchronous invokes,
 * or through the SQS FIFO trigger queue and an event source mapping stand-in), and the record of
 * each trigger's wait from being sent to a reconcile handler starting on it.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import { createEventBus, type EventBus } from "../fakes/eventbridge/event-bus";
import { reconcileRulePatterns, SCHEDULE_PATTERN } from "../fakes/eventbridge/rules";
import { type LocalLambda, startLocalLambda } from "../fakes/lambda/local-lambda";
import { type SqsEvent, type SqsEventSource, startSqsEventSource } from "../fakes/lambda/sqs-event-source";
import type { Cleanups } from "../lib/cleanups";
import { type EventWait, noteEventWaits } from "./event-waits";
import { TEST_CREDENTIALS } from "./rotation-stack";
import { createTriggerQueue, queueDepth, sendTrigger, sendTriggers } from "./trigger-queue";
import { type FunctionHandler, reconcileRunSummary, type WorldOptions } from "./world-options";

export const ROTATE_TOKEN = "rotate-token";
export const RECONCILE = "reconcile";

export interface HandlerWiring {
  lambda: LocalLambda;
  bus: EventBus;
  /** Puts an event on the bus, telling the `onEvent` observer and noting when it was sent. */
  put(event: unknown): void;
  delivery: "queue" | "async";
  /** The event source mapping stand-in draining the queue; undefined in "async" delivery. */
  eventSource: SqsEventSource | undefined;
  triggerQueue: { url: string; arn: string };
  /** The event waits recorded so far (live: copy before handing out). */
  waits: EventWait[];
  /** What of the queue delivery is busy (a batch running, messages in the queue). */
  queueBusy(): Promise<string[]>;
}

export async function wireHandlers(
  options: WorldOptions,
  parts: { primaryRegion: string; motoUrl: string; secretArn: string; cleanups: Cleanups },
): Promise<HandlerWiring> {
  // The trigger queue exists in both delivery modes, so RECONCILE_QUEUE_URL always names a queue.
  // Its client is the sandbox's (EventBridge's SQS target and the event source mapping), not metered.
  const delivery = options.delivery ?? "queue";
  const visibilityTimeoutSeconds =
    options.queueVisibilityTimeoutSeconds ??
    6 * Math.ceil((options.timeoutsMs?.reconcile ?? 900_000) / 1_000);
  const triggerSqs = new SQSClient({
    region: parts.primaryRegion,
    endpoint: parts.motoUrl,
    credentials: TEST_CREDENTIALS,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
  });
  parts.cleanups.push({ what: "the trigger queue's client", run: () => triggerSqs.destroy() });
  const triggerQueue = await createTriggerQueue(triggerSqs, visibilityTimeoutSeconds);

  // Each trigger's wait from being sent to a reconcile handler starting on it (the "event wait").
  const putAt = new Map<string, number>();
  const waits: EventWait[] = [];
  const reconcile: FunctionHandler = async (event, context) => {
    noteEventWaits(event, putAt, waits);
    const result = await options.handlers.reconcile(event, context);
    const summary = reconcileRunSummary(result);
    try {
      if (summary) options.onReconcileEnded?.(summary);
    } catch {
      // an observer must not change the handler's result
    }
    return result;
  };

  const lambda = await startLocalLambda({
    functions: {
      [ROTATE_TOKEN]: {
        handler: options.handlers.rotateToken,
        ...(options.timeoutsMs?.rotateToken ? { timeoutMs: options.timeoutsMs.rotateToken } : {}),
      },
      [RECONCILE]: {
        handler: reconcile,
        ...(options.timeoutsMs?.reconcile ? { timeoutMs: options.timeoutsMs.reconcile } : {}),
      },
    },
    ...(options.lambdaOverheadMs === undefined ? {} : { overheadMs: options.lambdaOverheadMs }),
    ...(options.onInvoke ? { onInvoke: options.onInvoke } : {}),
  });
  parts.cleanups.push({ what: "the local Lambda", run: () => lambda.close() });

  let eventSource: SqsEventSource | undefined;
  if (delivery === "queue") {
    const source = startSqsEventSource({
      sqs: triggerSqs,
      queueUrl: triggerQueue.url,
      queueArn: triggerQueue.arn,
      region: parts.primaryRegion,
      visibilityTimeoutSeconds,
      invoke: (event: SqsEvent) => lambda.invoke(RECONCILE, event),
    });
    eventSource = source;
    parts.cleanups.push({ what: "the event source mapping", run: () => source.stop() });
  }

  const { promoted, refreshes } = reconcileRulePatterns(parts.secretArn);
  const bus = createEventBus({
    rules: [promoted, refreshes, SCHEDULE_PATTERN],
    ...(options.busDeliveriesInFlight === undefined ? {} : { maxInFlight: options.busDeliveriesInFlight }),
    ...(delivery === "queue"
      ? {
          deliver: (event) => sendTrigger(triggerSqs, triggerQueue.url, event),
          deliverBatch: (events) => sendTriggers(triggerSqs, triggerQueue.url, events),
        }
      : { deliver: (event) => lambda.invokeAsync(RECONCILE, event) }),
  });
  parts.cleanups.push({ what: "the event bus", run: () => bus.close() });
  const put = (event: unknown) => {
    try {
      options.onEvent?.(event);
    } catch {
      // an observer must not break delivery
    }
    const id = (event as { id?: unknown } | null)?.id;
    if (typeof id === "string") putAt.set(id, Date.now());
    bus.put(event);
  };

  const source = eventSource;
  return {
    lambda,
    bus,
    put,
    delivery,
    eventSource,
    triggerQueue,
    waits,
    async queueBusy() {
      const busy = source?.busy() ? ["event source mapping running a batch"] : [];
      const depth = await queueDepth(triggerSqs, triggerQueue.url).catch(() => -1);
      if (depth !== 0) busy.push(`trigger queue: ${depth < 0 ? "unreadable" : `${depth} message(s)`}`);
      return busy;
    },
  };
}
