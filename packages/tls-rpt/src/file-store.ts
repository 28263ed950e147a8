// TLS-RPT counters in a directory, one JSON file per UTC day, for a single node without a
// database (the shared FileCounterStore keyed by the TLS-RPT row key).
import { FileCounterStore } from "./reporting/file-counter-store.ts";
import { rowKey, type TlsResultRow, type TlsRptStore } from "./store.ts";

export class FileTlsRptStore extends FileCounterStore<TlsResultRow> implements TlsRptStore {
  constructor(options: { dir: string }) {
    super({ dir: options.dir, key: rowKey });
  }
}
