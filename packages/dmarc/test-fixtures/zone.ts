// The fake DNS zone and helpers shared by the DMARC and ARC tests. DKIM keys are those of the
// dkimpy-signed fixtures in packages/dkim/test-fixtures.
import { readFileSync } from "node:fs";
import { type HeaderList, parseHeaderBlock } from "@postern/core";
import type { Zone } from "@postern/testing";

const dkimFixtures = new URL("../../dkim/test-fixtures/", import.meta.url);
export const fixture = (name: string) => readFileSync(new URL(name, dkimFixtures));
const keyRecords = JSON.parse(fixture("dns.json").toString()) as Record<string, string>;

// The test kit's client connects from 127.0.0.1 and says EHLO client.test.
export const zone: Zone = {
  ...Object.fromEntries(Object.entries(keyRecords).map(([name, text]) => [name, { TXT: [text] }])),
  "_dmarc.signed.example": { TXT: ["v=DMARC1; p=reject"] },
  "reject.example": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
  "_dmarc.reject.example": { TXT: ["v=DMARC1; p=reject; rua=mailto:dmarc@reject.example"] },
  "_dmarc.quarantine.example": { TXT: ["v=DMARC1; p=quarantine"] },
  "_dmarc.none.example": { TXT: ["v=DMARC1; p=none"] },
  "_dmarc.slow.example": "TIMEOUT",
  "evil.example": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
  "forwarder.example": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
};

export const headersOf = (bytes: Buffer): HeaderList =>
  parseHeaderBlock(bytes.subarray(0, bytes.indexOf("\r\n\r\n") + 2));
