// @postern/webhook — hands each message to an application over HTTP. Takes the route groups named in
// `routes` in the queue hook, POSTs the message (raw RFC 5322 bytes, or JSON with the parsed
// message, envelope and authentication results), signed with HMAC-SHA256, and answers accept()
// only when the endpoint answered 2xx. 5xx, timeouts and broken connections answer 451 4.4.x, so
// the sender keeps the message and retries; an HTTP 4xx rejects it (or defers, if configured).
import type { Readable } from "node:stream";
import { accept, defer, type EnhancedStatus, type Plugin, parseOptions, reject } from "@postern/core";
import { Agent } from "undici";
import { type WebhookOptions, webhookOptionsSchema } from "./options.ts";
import { buildPayload } from "./payload.ts";
import { post } from "./post.ts";
import { encodeEnvelope, envelopeHeader, signatureHeader, startSignature, timestampHeader } from "./signature.ts";

export type { WebhookOptions } from "./options.ts";
export type { WebhookAddress, WebhookAttachment, WebhookPayload } from "./payload.ts";
export type { PostOutcome } from "./post.ts";
export {
  encodeEnvelope,
  envelopeHeader,
  signatureHeader,
  startSignature,
  timestampHeader,
  type VerifyOptions,
  type VerifyResult,
  verifyWebhook,
  type WebhookEnvelope,
} from "./signature.ts";

const pluginName = "@postern/webhook";

export default function webhook(options: WebhookOptions): Plugin {
  const resolved = parseOptions(webhookOptionsSchema, options, pluginName);
  const routes = new Set(resolved.routes);
  let agent: Agent | undefined;

  return {
    name: pluginName,
    setup() {
      agent = new Agent({ connections: resolved.maxConnections, keepAliveTimeout: 30_000 });
    },
    async close() {
      await agent?.close();
      agent = undefined;
    },
    hooks: {
      async queue(transaction, message, group, { signal, log }) {
        if (!routes.has(group.route)) return undefined;
        if (!agent) return defer("4.3.0", "Webhook not ready, try again later");
        const timestamp = String(Math.floor(Date.now() / 1000));
        const envelope = encodeEnvelope({
          mailFrom: transaction.mailFrom.address,
          recipients: group.recipients.map((recipient) => recipient.address),
          route: group.route,
          queueId: transaction.id,
        });
        const headers: Record<string, string> = {
          ...resolved.headers,
          "user-agent": "Postern webhook",
          [timestampHeader]: timestamp,
          [envelopeHeader]: envelope,
          "x-postern-queue-id": transaction.id,
        };

        let body: Buffer | Readable;
        if (resolved.format === "json") {
          const payload = await buildPayload(transaction, message, group, resolved.attachments);
          body = Buffer.from(JSON.stringify(payload), "utf8");
          headers["content-type"] = "application/json";
          headers["content-length"] = String(body.length);
          if (resolved.secret) {
            headers[signatureHeader] =
              `v1=${startSignature(resolved.secret, timestamp, envelope).update(body).digest("hex")}`;
          }
        } else {
          // Raw: the signature needs the whole body before the headers go out, so the message is
          // read twice from the spool (hashing, then sending) instead of being held in memory.
          let size = 0;
          const hmac = resolved.secret ? startSignature(resolved.secret, timestamp, envelope) : undefined;
          for await (const chunk of message.stream() as AsyncIterable<Buffer>) {
            hmac?.update(chunk);
            size += chunk.length;
          }
          if (hmac) headers[signatureHeader] = `v1=${hmac.digest("hex")}`;
          headers["content-type"] = "message/rfc822";
          headers["content-length"] = String(size);
          body = message.stream();
        }

        const outcome = await post(
          { url: resolved.url, dispatcher: agent, headers, body, signal, timeoutMs: resolved.timeoutMs },
          AbortSignal.timeout(resolved.timeoutMs),
        );
        if (outcome.kind === "accepted") {
          log.info({ status: outcome.status }, "delivered to the webhook");
          return accept();
        }
        if (outcome.kind === "refused") {
          log.warn({ status: outcome.status }, "the webhook refused the message");
          if (resolved.clientErrors === "defer") {
            return defer("4.4.0", `The receiving application answered HTTP ${outcome.status}, try again later`);
          }
          return reject(resolved.rejectWith.status as EnhancedStatus, resolved.rejectWith.text);
        }
        log.warn({ status: outcome.status, reason: outcome.reason }, "webhook delivery failed; the sender will retry");
        const what =
          outcome.reason === "timeout"
            ? `did not answer within ${resolved.timeoutMs} ms`
            : outcome.status
              ? `answered HTTP ${outcome.status}`
              : `could not be reached (${outcome.reason})`;
        return defer(outcome.enhanced, `The receiving application ${what}, try again later`);
      },
    },
  } satisfies Plugin;
}
