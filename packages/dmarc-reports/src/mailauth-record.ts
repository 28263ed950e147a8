// mailauth's DMARC record module, which ships no types: its tag-list parser and the DMARCbis Tree
// Walk, typed here for the three functions used. Loaded with require() (it is CommonJS), so no
// ambient declaration has to travel with this package's sources.
import { createRequire } from "node:module";

type Resolve = (name: string, type: string) => Promise<unknown>;
type RecordLookup = (name: string) => Promise<unknown>;

interface RecordModule {
  /** Parses a DMARC tag-list: lower-case tag names, `rr` the record itself; null when invalid under strict. */
  parseDmarcRecord(text: string, options?: { strict?: boolean }): Record<string, unknown> | null;
  /** A cached `_dmarc.<name>` lookup for Tree Walks. */
  createRecordLookup(resolver: Resolve, options?: { strict?: boolean }): RecordLookup;
  /** The Organizational Domain by the DMARCbis Tree Walk; throws on DNS errors. */
  getOrgDomain(domain: string, lookup: RecordLookup): Promise<string>;
}

const record = createRequire(import.meta.url)("mailauth/lib/dmarc/get-dmarc-record.js") as RecordModule;

export const parseDmarcRecord: RecordModule["parseDmarcRecord"] = record.parseDmarcRecord;
export const createRecordLookup: RecordModule["createRecordLookup"] = record.createRecordLookup;
export const getOrgDomain: RecordModule["getOrgDomain"] = record.getOrgDomain;
