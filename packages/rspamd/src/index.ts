// @postern/rspamd — spam filtering with rspamd over its HTTP protocol. At the end of DATA the
// message, as storage would receive it, is streamed to rspamd's /checkv2 with the envelope and the
// session in request headers; rspamd's action becomes a reply (reject 550 5.7.1, soft reject and
// greylist 451 4.7.1) or a change (Subject, spam header), its milter block is applied through
// core's rewriting API, and the score and symbols are recorded (a result key, a header field). An
// rspamd that is down or slow gets a stated policy — 451 4.7.1 by default — said in one log line.
import {
  defer,
  type Logger,
  type Plugin,
  parseOptions,
  type ResultKey,
  reject,
  resultKey,
  type Verdict,
} from "@postern/core";
import { type AppliedAnswer, applyReply, type DataVerdict, removeForeign } from "./apply-reply.ts";
import { checkv2, describeEndpoint } from "./client.ts";
import { RspamdError } from "./errors.ts";
import { type RspamdOptions, rspamdOptionsSchema } from "./options.ts";
import { parseReply, type RspamdAction, type RspamdSymbol } from "./reply.ts";
import { requestHeaders } from "./request-headers.ts";
import { resultHeaderValue } from "./result-header.ts";
import { settingsFor } from "./session-rules.ts";

export type { AppliedAnswer } from "./apply-reply.ts";
export type { RspamdEndpoint } from "./client.ts";
export { parseEndpoint } from "./client.ts";
export type { RspamdErrorCode } from "./errors.ts";
export { RspamdError } from "./errors.ts";
export type { ActionPolicies, ActionPolicy, RspamdOptions, RspamdRule } from "./options.ts";
export type { HeaderToAdd, MilterBlock, RspamdAction, RspamdReply, RspamdSymbol } from "./reply.ts";
export { parseReply } from "./reply.ts";

export type RspamdResult =
  | {
      readonly status: "scanned";
      /** The action rspamd recommended. */
      readonly action: RspamdAction;
      /** What Postern did with it (the configured answer, after session rules). */
      readonly answer: AppliedAnswer;
      readonly score: number;
      readonly requiredScore: number;
      /** Strongest first. */
      readonly symbols: readonly RspamdSymbol[];
      /** rspamd skipped its checks (its settings, or a pre-result such as GTUBE). */
      readonly skipped: boolean;
      /** rspamd's own time for the scan (ms), when it said. */
      readonly scanMs: number | undefined;
      /** The whole check as Postern saw it: sending, rspamd's scan, the reply (ms). */
      readonly durationMs: number;
      readonly settingsId: string | undefined;
    }
  | {
      /** Not scanned: a session rule said so, the message was over maxScanSize, or rspamd failed (and the policy let it through). */
      readonly status: "unscanned";
      readonly reason: "rule" | "oversize" | "error";
      readonly detail: string;
    };

/** The check's result (on `transaction.results`), for plugins that run after this one. */
export const rspamdResult: ResultKey<RspamdResult> = resultKey<RspamdResult>("rspamd");

const pluginName = "@postern/rspamd";

export default function rspamd(options: RspamdOptions = {}): Plugin {
  const resolved = parseOptions(rspamdOptionsSchema, options, pluginName);
  const where = describeEndpoint(resolved.url);
  let hostname = "localhost";

  /** A policy's answer for a message not scanned; "accept" is recorded and logged, never silent. */
  const unscanned = (
    policy: "accept" | "defer" | "reject",
    reason: "oversize" | "error",
    detail: string,
    log: Logger,
    record: (result: RspamdResult) => void,
    code?: string,
  ): Verdict | undefined => {
    const said = policy === "accept" ? "accepted unscanned" : policy === "defer" ? "deferred" : "rejected";
    log.warn({ code, reason, policy }, `rspamd: ${detail}; message ${said}`);
    if (policy === "accept") {
      record({ status: "unscanned", reason, detail });
      return undefined;
    }
    if (reason === "oversize") {
      return policy === "defer"
        ? defer("4.7.1", "Message too large to be checked for spam, try again later", 451)
        : reject("5.3.4", "Message too large to be checked for spam", 552);
    }
    return policy === "defer"
      ? defer("4.7.1", "Spam filter unavailable, try again later", 451)
      : reject("5.7.1", "Spam filter unavailable", 554);
  };

  return {
    name: pluginName,
    setup(server) {
      hostname = server.hostname;
    },
    hooks: {
      data: {
        // Past rspamd's own deadline, so a slow rspamd meets the onError policy, not core's 451 4.4.3.
        timeoutMs: resolved.timeoutMs + 2000,
        async handler(transaction, message, { log, signal }): Promise<DataVerdict | undefined> {
          const record = (result: RspamdResult) => transaction.results.set(rspamdResult, result);
          // The score header is ours: one a client wrote must not pass for it.
          if (resolved.header) removeForeign(message, resolved.header.name);
          const settings = settingsFor(transaction.session, resolved);
          if (settings.skip) {
            record({ status: "unscanned", reason: "rule", detail: `skipped by rules[${settings.rule}]` });
            return undefined;
          }
          if (message.size > resolved.maxScanSize) {
            const detail = `message of ${message.size} bytes is over maxScanSize ${resolved.maxScanSize}`;
            return unscanned(resolved.oversize, "oversize", detail, log, record);
          }
          const started = performance.now();
          let body: string;
          const check = () =>
            checkv2(resolved.url, {
              headers: requestHeaders(transaction, { hostname, settingsId: settings.settingsId }),
              body: message.stream(),
              size: message.size,
              timeoutMs: resolved.timeoutMs,
              signal,
            });
          try {
            try {
              body = await check();
            } catch (error) {
              // A connection rspamd closed before answering (a worker reloading — it does so when
              // its hyperscan helper reports, and on SIGHUP — or restarting) gets one more try on a
              // new connection: the message stream can be read again. Anything else is final.
              if (asRspamdError(error).code !== "POSTERN_RSPAMD_CONNECTION_LOST" || signal?.aborted) throw error;
              log.warn({ err: error }, "rspamd closed the connection before answering; asking once more");
              body = await check();
            }
          } catch (error) {
            const failure = asRspamdError(error);
            return unscanned(resolved.onError, "error", failure.message, log, record, failure.code);
          }
          const durationMs = performance.now() - started;
          let reply: ReturnType<typeof parseReply>;
          try {
            reply = parseReply(body);
          } catch (error) {
            const failure = asRspamdError(error);
            return unscanned(resolved.onError, "error", `${where}: ${failure.message}`, log, record, failure.code);
          }
          const outcome = await applyReply(reply, transaction, message, {
            actions: settings.actions,
            spamHeader: resolved.spamHeader,
            subject: resolved.subject,
          });
          record({
            status: "scanned",
            action: reply.action,
            answer: outcome.answer,
            score: reply.score,
            requiredScore: reply.requiredScore,
            symbols: reply.symbols,
            skipped: reply.skipped,
            scanMs: reply.scanMs,
            durationMs,
            settingsId: settings.settingsId,
          });
          const facts = { action: reply.action, answer: outcome.answer, score: reply.score, durationMs };
          for (const problem of outcome.problems) log.warn(facts, `rspamd: ${problem}`);
          if (outcome.verdict) {
            log.info(facts, `rspamd: ${reply.action} (score ${reply.score.toFixed(2)}); answered ${outcome.answer}`);
            return outcome.verdict;
          }
          if (resolved.header) message.prepend(resolved.header.name, resultHeaderValue(reply, resolved.header));
          return undefined;
        },
      },
    },
  } satisfies Plugin;
}

function asRspamdError(error: unknown): RspamdError {
  return error instanceof RspamdError
    ? error
    : new RspamdError("POSTERN_RSPAMD_CONNECTION_LOST", String(error), { cause: error });
}
