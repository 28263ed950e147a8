// DMARC counters in a directory, one JSON file per UTC day, for a single node without a
// database (the shared FileCounterStore keyed by the DMARC row key).
import { FileCounterStore } from "@postern/tls-rpt/reporting";
import { type DmarcReportStore, type DmarcResultRow, rowKey } from "./store.ts";

export class FileDmarcReportStore extends FileCounterStore<DmarcResultRow> implements DmarcReportStore {
  constructor(options: { dir: string }) {
    super({ dir: options.dir, key: rowKey });
  }
}
