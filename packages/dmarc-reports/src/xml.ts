// A report as XML and back, with fast-xml-parser. Elements go out in the order the format
// prescribes (DMARCbis aggregate reporting §2.1: feedback → version, report_metadata,
// policy_published, record+; each record → row, identifiers, auth_results). The parser is ours
// and strict about what the format requires, lenient about what it leaves optional, and refuses
// a DOCTYPE (no entity expansion, the XML bomb of the draft's security considerations).
import { XMLBuilder, XMLParser, XMLValidator } from "fast-xml-parser";
import { z } from "zod";
import { DmarcReportsError } from "./errors.ts";
import type { AggregateRecord, AggregateReport } from "./report.ts";

/** The DMARCbis namespace of <feedback>. */
export const dmarcNamespace = "urn:ietf:params:xml:ns:dmarc-2.0";

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: "@_", format: true, indentBy: "  " });

/** Skips undefined values, so optional elements are left out rather than written empty. */
function present<T extends Record<string, unknown>>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function recordElement(record: AggregateRecord) {
  return {
    row: {
      source_ip: record.sourceIp,
      count: record.count,
      policy_evaluated: {
        disposition: record.disposition,
        dkim: record.dkim,
        spf: record.spf,
        ...(record.reasons.length > 0
          ? {
              reason: record.reasons.map((reason) =>
                present({ type: reason.type, comment: reason.comment || undefined }),
              ),
            }
          : {}),
      },
    },
    identifiers: present({
      header_from: record.headerFrom,
      envelope_from: record.envelopeFrom,
      envelope_to: record.envelopeTo,
    }),
    auth_results: {
      ...(record.dkimResults.length > 0
        ? {
            dkim: record.dkimResults.map((entry) =>
              present({
                domain: entry.domain,
                selector: entry.selector,
                result: entry.result,
                human_result: entry.humanResult || undefined,
              }),
            ),
          }
        : {}),
      ...(record.spfResult
        ? { spf: { domain: record.spfResult.domain, scope: record.spfResult.scope, result: record.spfResult.result } }
        : {}),
    },
  };
}

/**
 * The report's XML. `namespace: false` leaves out the DMARCbis namespace, for report consumers
 * whose parsers predate it (RFC 7489 parsers matching unqualified element names).
 */
export function reportToXml(report: AggregateReport, options: { namespace: boolean }): string {
  const { metadata, policy } = report;
  const feedback = {
    ...(options.namespace ? { "@_xmlns": dmarcNamespace } : {}),
    version: report.version,
    report_metadata: present({
      org_name: metadata.orgName,
      email: metadata.email,
      extra_contact_info: metadata.extraContactInfo,
      report_id: metadata.reportId,
      date_range: { begin: metadata.begin, end: metadata.end },
      error: metadata.errors.length > 0 ? [...metadata.errors] : undefined,
      generator: metadata.generator,
    }),
    policy_published: present({
      domain: policy.domain,
      discovery_method: policy.discoveryMethod,
      p: policy.p,
      sp: policy.sp,
      np: policy.np,
      fo: policy.fo,
      adkim: policy.adkim,
      aspf: policy.aspf,
      testing: policy.testing,
    }),
    record: report.records.map(recordElement),
  };
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ feedback })}`;
}

const arrays = new Set([
  "feedback.report_metadata.error",
  "feedback.record",
  "feedback.record.row.policy_evaluated.reason",
  "feedback.record.auth_results.dkim",
]);

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (_name, path) => arrays.has(String(path)),
});

const text = z.string();
const optionalText = z.string().optional();
const seconds = z.string().regex(/^\d+$/, { error: "expected seconds since the epoch" }).transform(Number);
const policyValue = z.enum(["none", "quarantine", "reject"]);
const alignment = z.enum(["r", "s"]);

const feedbackSchema = z.object({
  feedback: z.object({
    version: optionalText,
    report_metadata: z.object({
      org_name: text,
      email: text,
      extra_contact_info: optionalText,
      report_id: text,
      date_range: z.object({ begin: seconds, end: seconds }),
      error: z.array(text).optional(),
      generator: optionalText,
    }),
    policy_published: z.object({
      domain: text.min(1),
      discovery_method: z.enum(["psl", "treewalk"]).optional(),
      p: policyValue,
      sp: policyValue.optional(),
      np: policyValue.optional(),
      fo: optionalText,
      adkim: alignment.optional(),
      aspf: alignment.optional(),
      testing: z.enum(["y", "n"]).optional(),
    }),
    record: z
      .array(
        z.object({
          row: z.object({
            source_ip: text.min(1),
            count: z.string().regex(/^\d+$/, { error: "expected a count" }).transform(Number),
            policy_evaluated: z.object({
              disposition: z.enum(["none", "quarantine", "reject", "pass"]),
              dkim: z.enum(["pass", "fail"]),
              spf: z.enum(["pass", "fail"]),
              reason: z.array(z.object({ type: text, comment: optionalText })).optional(),
            }),
          }),
          identifiers: z.object({ header_from: text.min(1), envelope_from: optionalText, envelope_to: optionalText }),
          auth_results: z
            .union([
              z.literal(""),
              z.object({
                dkim: z
                  .array(z.object({ domain: text, selector: optionalText, result: text, human_result: optionalText }))
                  .optional(),
                spf: z
                  .object({ domain: text, scope: optionalText, result: text, human_result: optionalText })
                  .optional(),
              }),
            ])
            .transform((value) => (value === "" ? {} : value)),
        }),
      )
      .min(1, { error: "expected at least one record" }),
  }),
});

/** Reads an aggregate report (with or without the DMARCbis namespace); throws POSTERN_DMARC_REPORT_INVALID. */
export function parseAggregateReport(xml: string): AggregateReport {
  const invalid = (why: string, cause?: unknown) =>
    new DmarcReportsError("POSTERN_DMARC_REPORT_INVALID", `not a DMARC aggregate report: ${why}`, { cause });
  if (/<!DOCTYPE/i.test(xml)) throw invalid("a DOCTYPE is not allowed");
  const wellFormed = XMLValidator.validate(xml);
  if (wellFormed !== true) throw invalid(`${wellFormed.err.msg} (line ${wellFormed.err.line})`);
  const checked = feedbackSchema.safeParse(parser.parse(xml));
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw invalid(`${issue.path.join(".")}: ${issue.message}`, checked.error);
  }
  const { feedback } = checked.data;
  const metadata = feedback.report_metadata;
  const policy = feedback.policy_published;
  return {
    version: feedback.version ?? "1.0",
    metadata: {
      orgName: metadata.org_name,
      email: metadata.email,
      extraContactInfo: metadata.extra_contact_info,
      reportId: metadata.report_id,
      begin: metadata.date_range.begin,
      end: metadata.date_range.end,
      errors: metadata.error ?? [],
      generator: metadata.generator,
    },
    policy: {
      domain: policy.domain,
      discoveryMethod: policy.discovery_method,
      p: policy.p,
      sp: policy.sp,
      np: policy.np,
      adkim: policy.adkim ?? "r",
      aspf: policy.aspf ?? "r",
      testing: policy.testing ?? "n",
      fo: policy.fo ?? "0",
    },
    records: feedback.record.map((record) => ({
      sourceIp: record.row.source_ip,
      count: record.row.count,
      // "pass" is a disposition some reporters write for mail that passed; it is "none" applied.
      disposition:
        record.row.policy_evaluated.disposition === "pass" ? "none" : record.row.policy_evaluated.disposition,
      dkim: record.row.policy_evaluated.dkim,
      spf: record.row.policy_evaluated.spf,
      reasons: (record.row.policy_evaluated.reason ?? []).map((reason) => ({
        type: reason.type,
        comment: reason.comment ?? "",
      })),
      headerFrom: record.identifiers.header_from,
      envelopeFrom: record.identifiers.envelope_from,
      envelopeTo: record.identifiers.envelope_to,
      dkimResults: (record.auth_results.dkim ?? []).map((entry) => ({
        domain: entry.domain,
        selector: entry.selector ?? "",
        result: entry.result,
        humanResult: entry.human_result ?? "",
      })),
      spfResult: record.auth_results.spf
        ? {
            domain: record.auth_results.spf.domain,
            scope: record.auth_results.spf.scope === "helo" ? "helo" : "mfrom",
            result: record.auth_results.spf.result,
          }
        : undefined,
    })),
  };
}
