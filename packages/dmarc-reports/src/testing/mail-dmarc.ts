// Mail::DMARC (Debian's libmail-dmarc-perl) as an independent reader of our reports, through
// test-fixtures/mail-dmarc-parse.pl, which prints what it understood as JSON.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const perlParser = new URL("../../test-fixtures/mail-dmarc-parse.pl", import.meta.url).pathname;

export interface MailDmarcView {
  type: string;
  namespace_removed: boolean;
  envelope_to: string | null;
  metadata: { org_name: string; email: string; report_id: string; date_range: { begin: string; end: string } };
  policy_published: Record<string, string>;
  records: {
    row: {
      source_ip: string;
      count: string;
      policy_evaluated: {
        disposition: string;
        dkim: string;
        spf: string;
        reason?: { type: string; comment: string }[];
      };
    };
    identifiers: { header_from: string; envelope_from: string };
    auth_results: { dkim?: Record<string, string>[]; spf?: Record<string, string>[] };
  }[];
}

/** What Mail::DMARC reads from a file (an XML report, or a whole report message). */
export async function readWithMailDmarc(mode: "xml" | "message", file: string): Promise<MailDmarcView> {
  const { stdout } = await run("perl", [perlParser, mode, file], { timeout: 20_000 });
  return JSON.parse(stdout) as MailDmarcView;
}
