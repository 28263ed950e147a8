// The options of webhook(), validated when the config loads.
import type { EnhancedStatus } from "@postern/core";
import { z } from "zod";

export interface WebhookOptions {
  /** The endpoint each message is POSTed to (http: or https:). */
  url: string;
  /** "json" (default): the parsed message, envelope and authentication results; "raw": the RFC 5322 bytes. */
  format?: "json" | "raw";
  /** Key of the HMAC-SHA256 signature (X-Postern-Signature); share it with the receiver. */
  secret?: string;
  /** Deadline of one request, connection to end of the response headers and body. Default 15 s. */
  timeoutMs?: number;
  /** Extra request headers, e.g. { authorization: "Bearer …" }. */
  headers?: Record<string, string>;
  /** Route groups this plugin takes (see @postern/recipients). Default ["local"]. */
  routes?: string[];
  /** What an HTTP 4xx answer means: "reject" (default: 5xx, the sender bounces) or "defer" (4xx, it retries). */
  clientErrors?: "reject" | "defer";
  /** The SMTP refusal sent for an HTTP 4xx when clientErrors is "reject". Default 550 5.7.1. */
  rejectWith?: { status?: EnhancedStatus; text?: string };
  /** JSON format: attachment content as base64 ("inline", default) or metadata only ("omit"). */
  attachments?: "inline" | "omit";
  /** Concurrent connections to the endpoint. Default 16. */
  maxConnections?: number;
}

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const webhookOptionsSchema = z.strictObject({
  url: z.string({ error: "expected the endpoint URL, e.g. https://app.example.com/inbound" }).refine(
    (value) => {
      try {
        const url = new URL(value);
        return url.protocol === "http:" || url.protocol === "https:";
      } catch {
        return false;
      }
    },
    { error: "expected an http: or https: URL, e.g. https://app.example.com/inbound" },
  ),
  format: z.enum(["json", "raw"]).default("json"),
  secret: z.string().min(16, { error: "expected a secret of at least 16 characters" }).optional(),
  timeoutMs: z.number().int().positive().max(600_000).default(15_000),
  headers: z
    .record(
      z.string().regex(headerName, { error: "expected an HTTP header name" }),
      z.string().regex(/^[^\r\n\0]*$/, { error: "expected a header value without line breaks" }),
    )
    .default({}),
  routes: z
    .array(z.string().min(1))
    .min(1, { error: 'expected at least one route, e.g. ["local"]' })
    .default(["local"]),
  clientErrors: z.enum(["reject", "defer"]).default("reject"),
  rejectWith: z
    .strictObject({
      status: z
        .string()
        .regex(/^5\.\d{1,3}\.\d{1,3}$/, { error: 'expected a permanent enhanced status such as "5.7.1"' })
        .default("5.7.1"),
      text: z.string().min(1).default("Message refused by the receiving application"),
    })
    .prefault({}),
  attachments: z.enum(["inline", "omit"]).default("inline"),
  maxConnections: z.number().int().min(1).max(1024).default(16),
});

export type ResolvedWebhookOptions = z.output<typeof webhookOptionsSchema>;
