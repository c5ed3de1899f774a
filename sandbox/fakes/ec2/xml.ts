/**
 * EC2's XML: lists are `<item>` elements (not awsQuery's `<member>`), the response element is
 * `<ActionResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with a `<requestId>`, and
 * errors are `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
 */
import { escapeXml } from "../autoscaling/xml";
import type { Ec2Error } from "./errors";

export const EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/";

export type XmlValue = string | number | boolean | Date | undefined | readonly XmlNode[] | XmlNode;
export interface XmlNode {
  readonly [element: string]: XmlValue;
}

function element(name: string, value: XmlValue): string {
  if (value === undefined) return "";
  return `<${name}>${content(value)}</${name}>`;
}

function content(value: Exclude<XmlValue, undefined>): string {
  if (Array.isArray(value)) return value.map((item) => element("item", item)).join("");
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") {
    return Object.entries(value as XmlNode)
      .map(([name, child]) => element(name, child))
      .join("");
  }
  return escapeXml(String(value));
}

export function ec2Response(action: string, result: XmlNode, requestId: string): string {
  const body = element("requestId", requestId) + content(result);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}">${body}</${action}Response>`;
}

export function ec2ErrorDocument(error: Ec2Error, requestId: string): string {
  const errors = element("Errors", { Error: { Code: error.code, Message: error.message } });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response>${errors}<RequestID>${requestId}</RequestID></Response>`;
}
