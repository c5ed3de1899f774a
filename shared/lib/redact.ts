/**
 * Text redaction by shape: what a credential looks like, for text that may carry one we were never
 * told about (a server echoing a request, an SDK error quoting a body). Exact values we know are
 * redacted by the logger (`registerSecret`); this catches the rest without blanking the ordinary
 * long words of our logs (AWS error names, ARNs, role names, request ids, UUIDs, hex hashes).
 *
 * Every function truncates before it matches anything: patterns never see more than a bounded
 * amount of text, so a multi-megabyte input costs no more than a short one and cannot throw.
 */

export const REDACTED_SHAPE = "[redacted]";

/** Attacker-chosen strings (ids, names, bodies) are cut to this many characters in errors and logs. */
export const MAX_FIELD_CHARS = 300;

/**
 * Buildkite's documented token prefixes: `bkua_` API access tokens, `bkaa_` agent session tokens,
 * `bkaj_` agent job tokens, `bkar_` unclustered agent (registration) tokens
 * (https://buildkite.com/docs/platform/security/tokens), and `bkct_` cluster agent tokens. Any
 * `bk??_` prefix is treated alike: a new token kind must not slip through. The body may contain
 * `.` (`bkua_MTA.4f6c…`) and base64url characters.
 */
const BUILDKITE_TOKEN = /\bbk[a-z]{2}_[A-Za-z0-9._~+/=-]{8,}/g;

/** A JWT (header.payload[.signature]), e.g. the body of a `bkaj_` job token. */
const JWT = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?/g;

/**
 * Long runs of base64 / base64url / dashed-token characters. Whether one is a credential is
 * decided by `looksRandom`, not by length: 24+ word characters are just as often an exception
 * name or a role name.
 */
const LONG_RUN = /[A-Za-z0-9+/=_-]{32,}/g;

/**
 * An AWS secret access key is 40 characters of [A-Za-z0-9/+]
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/security-creds.html, the documented example
 * `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`), shorter than most random runs: a labelled
 * `SecretAccessKey`/`aws_secret_access_key` value is redacted whatever it looks like.
 */
const LABELLED_AWS_SECRET =
  /((?:aws_?)?secret_?access_?key|SecretAccessKey|aws_session_token|SessionToken)(["']?\s*[:=]\s*["']?)([A-Za-z0-9/+=]{16,})/gi;

/**
 * Names are words: in `InstanceRefreshInProgressFault`, `buildkite-agent-token-rotation` or
 * `RotateTokenFunctionRole-1A2B3C4D5E6F` every lower-case run is a word or its tail (4+ letters
 * on average). Random tokens break lower case up all the time: in base64, a lower-case run lasts
 * 1 / (1 - 26/64) ≈ 1.7 characters on average. Hex (hashes, UUIDs) has no upper case and
 * upper-case-and-digit suffixes have no lower case: neither is judged.
 */
export function looksRandom(run: string): boolean {
  let upper = false;
  let digit = false;
  let lowerChars = 0;
  let lowerRuns = 0;
  let inLower = false;
  for (const c of run) {
    const lower = c >= "a" && c <= "z";
    if (lower) {
      lowerChars++;
      if (!inLower) lowerRuns++;
    } else if (c >= "A" && c <= "Z") {
      upper = true;
    } else if (c >= "0" && c <= "9") {
      digit = true;
    }
    inLower = lower;
  }
  // Digit-free runs are more often CamelCase of short words; a 32-character base64 run lacks a
  // digit only about 0.4% of the time, so asking more of those costs little.
  return upper && lowerRuns >= 4 && lowerChars / lowerRuns < (digit ? 3 : 2.2);
}

/** `text` cut to `max` characters, marked when cut. */
export function truncate(text: string, max = MAX_FIELD_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}…[${text.length - max} more]` : text;
}

/** Blank everything shaped like a credential. `max` bounds the text first (default 64 KiB). */
export function redactTokenShapes(text: string, max = 65_536): string {
  return truncate(text, max)
    .replace(BUILDKITE_TOKEN, REDACTED_SHAPE)
    .replace(JWT, REDACTED_SHAPE)
    .replace(LABELLED_AWS_SECRET, (_m, label: string, sep: string) => `${label}${sep}${REDACTED_SHAPE}`)
    .replace(LONG_RUN, (run) => (looksRandom(run) ? REDACTED_SHAPE : run));
}
