// The options of clamav(), validated when the config loads.
import { byteSize } from "@postern/core";
import { z } from "zod";
import type { ClamdAddress } from "./clamd-client.ts";

export type ClamavPolicy = "defer" | "reject" | "accept";

export interface ClamavOptions {
  /**
   * Where clamd listens: "unix:/run/clamav/clamd.ctl" (Debian's LocalSocket, the default),
   * "inet:127.0.0.1:3310" (TCPAddr/TCPSocket) or "inet:[::1]:3310".
   */
  address?: string;
  /**
   * clamd's StreamMaxLength (default "25MB", clamd's own default). Nothing larger is sent: a
   * larger message gets the `oversize` policy. Set it to clamd's value; a clamd that stops the
   * stream earlier (a smaller StreamMaxLength) also gets the `oversize` policy.
   */
  maxScanSize?: number | string;
  /**
   * A virus found: "reject" (the default, 554 5.7.1 naming the signature) or "quarantine" (the
   * message is stored under the server's quarantine route, `quarantineRoute`, and the client is
   * told it was accepted).
   */
  onVirus?: "reject" | "quarantine";
  /** A message over maxScanSize: "defer" (the default, 451 4.7.1), "reject" (552 5.3.4) or "accept" (logged, recorded as unscanned). */
  oversize?: ClamavPolicy;
  /** clamd down, slow or answering an error: "defer" (the default, 451 4.7.1), "reject" (554 5.7.1) or "accept" (logged, recorded as unscanned). */
  onError?: ClamavPolicy;
  timeouts?: {
    /** Connecting to clamd (default 2000). */
    connectMs?: number;
    /** The whole scan, from the first byte sent to clamd's answer (default 30000). */
    scanMs?: number;
  };
  /** Bytes per INSTREAM chunk (default 65536). */
  chunkSize?: number;
}

/** Parses a clamd address: "unix:/path", "inet:HOST:PORT" or "inet:[IPv6]:PORT". */
export function parseClamdAddress(text: string): ClamdAddress | undefined {
  const unix = /^(?:unix|local):(\/.+)$/.exec(text);
  if (unix) return { kind: "unix", path: unix[1]! };
  const inet = /^inet6?:(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  if (!inet) return undefined;
  const port = Number(inet[3]);
  if (port < 1 || port > 65535) return undefined;
  return { kind: "tcp", host: (inet[1] ?? inet[2])!, port };
}

const sizeHint = 'expected a size such as 26214400, "25MB" or "512KB"';
// Core's byteSize is a union, whose failure reads "Invalid input"; say what is expected instead.
const scanSize = z.unknown().transform((value, context): number => {
  const parsed = byteSize.safeParse(value);
  if (parsed.success) return parsed.data;
  context.addIssue({ code: "custom", message: sizeHint });
  return z.NEVER;
});

const addressHint = 'expected "unix:/path/to/clamd.ctl" or "inet:HOST:PORT"';
const policy = z.enum(["defer", "reject", "accept"]);
const milliseconds = z.number().int().positive({ error: "expected a positive number of milliseconds" });

export const clamavOptionsSchema = z.strictObject({
  address: z
    .string({ error: addressHint })
    .default("unix:/run/clamav/clamd.ctl")
    .transform((text, context) => {
      const address = parseClamdAddress(text);
      if (!address) {
        context.addIssue({ code: "custom", message: addressHint });
        return z.NEVER;
      }
      return address;
    }),
  maxScanSize: scanSize.default(25 * 1024 * 1024),
  onVirus: z.enum(["reject", "quarantine"]).default("reject"),
  oversize: policy.default("defer"),
  onError: policy.default("defer"),
  timeouts: z
    .strictObject({ connectMs: milliseconds.default(2000), scanMs: milliseconds.default(30_000) })
    .default({ connectMs: 2000, scanMs: 30_000 }),
  chunkSize: z
    .number()
    .int()
    .min(1024, { error: "expected at least 1024 bytes" })
    .max(1024 * 1024, { error: "expected at most 1048576 bytes" })
    .default(64 * 1024),
});

export type ResolvedClamavOptions = z.output<typeof clamavOptionsSchema>;
