/**
 * What a route handler answers, and the small parsers every handler shares (JSON bodies, the
 * `Authorization` header). No I/O beyond reading the request body; nothing here logs.
 */
import type { IncomingMessage } from "node:http";

export interface Reply {
  status: number;
  /** JSON-encoded when defined; 204 replies leave it undefined. */
  body?: unknown;
  headers?: Record<string, string>;
}

const MAX_BODY_BYTES = 1024 * 1024;

export const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});
export const message = (status: number, text: string): Reply => json(status, { message: text });
export const notFound = (): Reply => message(404, "Not Found");

export function validationFailed(field: string, code: string, text: string): Reply {
  return json(422, { message: `Validation failed: ${text}`, errors: [{ field, code }] });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The credential of an `Authorization: <scheme> <credential>` header, if it has that scheme. */
export function credential(header: string | undefined, scheme: "Bearer" | "Token"): string | undefined {
  const match = new RegExp(`^${scheme}\\s+(\\S+)\\s*$`, "i").exec(header ?? "");
  return match?.[1];
}

export async function readJson(
  req: IncomingMessage,
): Promise<{ ok: true; value: unknown } | { ok: false; reply: Reply }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_BODY_BYTES) return { ok: false, reply: message(413, "Request body too large") };
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, reply: message(400, "Body couldn't be parsed as JSON") };
  }
}
