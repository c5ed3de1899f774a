/**
 * Hand-written XML for the AWS Query protocol's responses. Values map to elements the way the
 * protocol expects: objects become child elements in key order, arrays become `<member>` lists,
 * dates are ISO 8601, `undefined` is omitted.
 */
import type { AutoScalingError } from "./errors";

export const XML_NAMESPACE = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

export type XmlValue = string | number | boolean | Date | undefined | readonly XmlValue[] | XmlObject;
export interface XmlObject {
  readonly [element: string]: XmlValue;
}

const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
  // A literal CR would be normalised away by the client's parser; a character reference survives.
  "\r": "&#13;",
};

/** Escapes text for element content; characters XML 1.0 cannot carry become U+FFFD. */
export function escapeXml(text: string): string {
  // Most values (ids, names, times) need nothing: the character walk below cost 3.5 % of the
  // sandbox's CPU while 1,000 refreshes started.
  if (!needsEscaping(text)) return text;
  return Array.from(text, (character) => {
    const code = character.codePointAt(0) ?? 0;
    if (!isXmlChar(code)) return "\uFFFD";
    return ENTITIES[character] ?? character;
  }).join("");
}

/**
 * Whether escapeXml changes anything: a character ENTITIES replaces, or a code unit outside XML's
 * `Char` (a surrogate too: whether it is half of a pair is left to the walk above).
 */
function needsEscaping(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (ESCAPED.has(c) || (c >= 0xd800 && c <= 0xdfff) || !isXmlChar(c)) return true;
  }
  return false;
}

const ESCAPED = new Set(Object.keys(ENTITIES).map((ch) => ch.charCodeAt(0)));

/** The XML 1.0 `Char` production: tab, LF, CR and everything from space up, minus surrogates and U+FFFE/F. */
function isXmlChar(code: number): boolean {
  if (code === 0x9 || code === 0xa || code === 0xd) return true;
  return code >= 0x20 && !(code >= 0xd800 && code <= 0xdfff) && code !== 0xfffe && code !== 0xffff;
}

export function element(name: string, value: XmlValue): string {
  if (value === undefined) return "";
  return `<${name}>${content(value)}</${name}>`;
}

function content(value: Exclude<XmlValue, undefined>): string {
  if (isList(value)) return value.map((item) => element("member", item)).join("");
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([name, child]) => element(name, child))
      .join("");
  }
  return escapeXml(String(value));
}

function isList(value: XmlValue): value is readonly XmlValue[] {
  return Array.isArray(value);
}

/** `<ActionResponse>` with an optional `<ActionResult>` (actions without output have none). */
export function responseDocument(
  action: string,
  result: XmlObject | undefined,
  requestId: string,
  namespace = XML_NAMESPACE,
): string {
  const body = element(`${action}Result`, result) + element("ResponseMetadata", { RequestId: requestId });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${namespace}">${body}</${action}Response>`;
}

/** The awsQuery error envelope (Auto Scaling, CloudFormation): `<ErrorResponse><Error>…</Error><RequestId/>`. */
export function errorDocument(
  error: Pick<AutoScalingError, "type" | "code" | "message">,
  requestId: string,
  namespace = XML_NAMESPACE,
): string {
  const body =
    element("Error", { Type: error.type, Code: error.code, Message: error.message }) +
    element("RequestId", requestId);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="${namespace}">${body}</ErrorResponse>`;
}
