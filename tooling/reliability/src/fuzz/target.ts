// The server the fuzzer talks to: one in-process server (startTestServer) with a plaintext, a
// STARTTLS, an implicit-TLS and an AUTH listener, a store that keeps what it is given by the id
// each fuzzed message carries (X-Fuzz-Id), and a data hook that records the header fields core
// parsed — so a session's outcome can be checked even with many sessions at once.
import { accept, type Plugin, reject } from "@postern/core";
import { claimRecipients, createTestCertificate, type LogRecord, startTestServer } from "@postern/testing";
import { malformation } from "../support/well-formed.ts";

export const fuzzUser = "fuzz";
export const fuzzPassword = "secret";

export interface ParsedField {
  name: string;
  raw: string;
}

export interface FuzzTarget {
  readonly plainPort: number;
  readonly startTlsPort: number;
  readonly implicitPort: number;
  readonly authPort: number;
  /** Stored messages by X-Fuzz-Id (taken out by the check that reads them). */
  readonly stored: Map<string, Buffer[]>;
  /** Header fields as core parsed them, by X-Fuzz-Id. */
  readonly parsedHeaders: Map<string, ParsedField[]>;
  /** Messages stored without an X-Fuzz-Id (from random command scripts), and how many were malformed. */
  readonly anonymous: { stored: number; malformed: string[] };
  /** Error records (level ≥ 50) the server logged so far. */
  errors(): LogRecord[];
  /**
   * Moves the server's log records out of the test kit's list (which keeps every record in
   * memory): errors are kept, the rest dropped, so a long run measures the server, not the list.
   */
  collectLogs(): void;
  stop(): Promise<void>;
}

/** The id a fuzzed message carries in its first line, as it reaches the store. */
export function fuzzIdOf(bytes: Buffer): string | undefined {
  const at = bytes.indexOf("X-Fuzz-Id: ");
  if (at === -1) return undefined;
  const end = bytes.indexOf("\r\n", at);
  return bytes.subarray(at + 11, end === -1 ? undefined : end).toString("latin1");
}

export async function startFuzzTarget(): Promise<FuzzTarget> {
  const certificate = await createTestCertificate(["mx.test", "localhost"]);
  const stored = new Map<string, Buffer[]>();
  const parsedHeaders = new Map<string, ParsedField[]>();
  const anonymous = { stored: 0, malformed: [] as string[] };
  const tlsFiles = { certificate: certificate.certificate, key: certificate.key };

  const store: Plugin = {
    name: "reliability:fuzz-store",
    hooks: {
      async queue(_transaction, message) {
        const chunks: Buffer[] = [];
        for await (const chunk of message.stream()) chunks.push(chunk as Buffer);
        const bytes = Buffer.concat(chunks);
        const id = fuzzIdOf(bytes);
        if (id === undefined) {
          anonymous.stored++;
          const problem = malformation(bytes);
          if (problem) anonymous.malformed.push(problem);
        } else {
          stored.set(id, [...(stored.get(id) ?? []), bytes]);
        }
        return accept();
      },
    },
  };
  const headerProbe: Plugin = {
    name: "reliability:fuzz-headers",
    hooks: {
      data(_transaction, message) {
        // A fuzzed line may fold onto the id field: the id is its first word.
        const id = message.headers.get("X-Fuzz-Id")?.split(/\s/)[0];
        if (id !== undefined) {
          parsedHeaders.set(
            id,
            [...message.headers].map((field) => ({ name: field.name, raw: field.raw })),
          );
        }
        return undefined;
      },
    },
  };
  const passwordCheck: Plugin = {
    name: "reliability:fuzz-auth",
    hooks: {
      auth(_session, credentials) {
        return credentials.username === fuzzUser && credentials.password === fuzzPassword
          ? accept()
          : reject("5.7.8", "Authentication credentials invalid");
      },
    },
  };

  const server = await startTestServer({
    plugins: [passwordCheck, claimRecipients(), headerProbe, store],
    config: {
      listeners: [
        // A short idle timeout so stalled handshakes and half-sent commands end within the run.
        { address: "127.0.0.1", port: 1, socketTimeoutMs: 1500 },
        { address: "127.0.0.1", port: 1, tls: "starttls", ...tlsFiles, socketTimeoutMs: 1500 },
        { address: "127.0.0.1", port: 1, tls: "implicit", ...tlsFiles, socketTimeoutMs: 1500 },
        { address: "127.0.0.1", port: 1, auth: "optional", allowInsecureAuth: true, socketTimeoutMs: 1500 },
      ],
      limits: { maxMessageSize: "1MB" },
    },
  });
  const [plainPort, startTlsPort, implicitPort, authPort] = server.ports as [number, number, number, number];
  const errors: LogRecord[] = [];
  const collectLogs = () => {
    for (const record of server.logs.splice(0)) if (record.level >= 50) errors.push(record);
  };
  return {
    plainPort,
    startTlsPort,
    implicitPort,
    authPort,
    stored,
    parsedHeaders,
    anonymous,
    errors: () => {
      collectLogs();
      return errors;
    },
    collectLogs,
    stop: () => server.stop(),
  };
}
