/**
 * The EventBridge rules that wake reconcile, as template.yaml declares them (SecretPromotedRule,
 * InstanceRefreshesRule, ReconcileScheduleRule; the replica regions' forwarders in
 * infra/forwarder.yaml forward the same refresh events), and EventBridge's matching of an event
 * against a pattern. An event no rule matches is never delivered: before this, the sandbox's bus
 * sent every refresh start to the queue, which the deployed rule never does, and each cost a queue
 * message and a batch slot that AWS would not spend.
 *
 * test/contract/template.event-rules.test.ts holds these patterns equal to the template's, and this
 * matcher's verdicts equal to moto's implementation of EventBridge matching.
 */

/** A pattern's leaf: the values an event field may have (EventBridge's exact-match form). */
export type EventPattern = { [field: string]: readonly string[] | EventPattern };

/** The terminal refresh events; a start changes no decision (template.yaml, InstanceRefreshesRule). */
export const TERMINAL_REFRESH_EVENTS = [
  "EC2 Auto Scaling Instance Refresh Succeeded",
  "EC2 Auto Scaling Instance Refresh Failed",
  "EC2 Auto Scaling Instance Refresh Cancelled",
  "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
  "EC2 Auto Scaling Instance Refresh Rollback Failed",
] as const;

/** SecretPromotedRule's and InstanceRefreshesRule's patterns for the agent token secret `secretArn`. */
export function reconcileRulePatterns(secretArn: string): {
  promoted: EventPattern;
  refreshes: EventPattern;
} {
  return {
    promoted: {
      source: ["aws.secretsmanager"],
      "detail-type": ["Secret Label Updated"],
      resources: [secretArn],
      detail: { labelUpdated: ["AWSCURRENT"] },
    },
    refreshes: { source: ["aws.autoscaling"], "detail-type": [...TERMINAL_REFRESH_EVENTS] },
  };
}

/**
 * The schedule rule has no pattern: EventBridge itself sends its `Scheduled Event` to the target
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-rule-schedule.html). Here
 * the bus sees it like any other event, so this pattern stands for that rule.
 */
export const SCHEDULE_PATTERN: EventPattern = { source: ["aws.events"], "detail-type": ["Scheduled Event"] };

/**
 * EventBridge's matching for exact-value patterns
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html): every field
 * the pattern names must be in the event; a leaf matches when the event's value is one of the
 * listed values or, for an array in the event, when any of its elements is; fields the pattern
 * does not name are ignored. Content filters (prefix, anything-but, …) are not used by our rules
 * and not modelled.
 */
export function matchesPattern(pattern: EventPattern, event: unknown): boolean {
  if (typeof event !== "object" || event === null || Array.isArray(event)) return false;
  const fields = event as Record<string, unknown>;
  return Object.entries(pattern).every(([field, expected]) => {
    const value = fields[field];
    if (isValueList(expected)) {
      const values = Array.isArray(value) ? value : [value];
      return values.some((v) => typeof v === "string" && expected.includes(v));
    }
    return matchesPattern(expected, value);
  });
}

function isValueList(p: readonly string[] | EventPattern): p is readonly string[] {
  return Array.isArray(p);
}

/** Whether any of the rules matches the event. */
export function anyRuleMatches(patterns: readonly EventPattern[], event: unknown): boolean {
  return patterns.some((p) => matchesPattern(p, event));
}
