// Test support (not exported): a real node:http server standing in for the application. It streams
// each body to a file, checks the signature as it goes, and files the message under each
// recipient only after the whole body arrived — then answers. What it has not answered 2xx for is
// never visible, like an application that commits before it answers.
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { envelopeHeader, signatureHeader, startSignature, timestampHeader, type WebhookEnvelope } from "./index.ts";

export type ReceiverMode =
  | { kind: "ok" }
  | { kind: "status"; status: number }
  /** Reads this many body bytes, then destroys the connection. */
  | { kind: "cut"; afterBytes: number }
  /** Never answers. */
  | { kind: "hang" };

export interface ReceivedRequest {
  headers: IncomingMessage["headers"];
  /** Bytes of the body that arrived. */
  size: number;
  signatureValid: boolean | undefined;
  envelope: WebhookEnvelope | undefined;
  answered: number | undefined;
}

export interface Receiver {
  readonly url: string;
  mode: ReceiverMode;
  readonly requests: ReceivedRequest[];
  /** Bodies answered 2xx for `recipient`, oldest first. */
  read(recipient: string): Promise<Buffer[]>;
  /** The last answered body, parsed as JSON. */
  lastJson(): Promise<unknown>;
  close(): Promise<void>;
}

export async function startReceiver(options: { secret?: string } = {}): Promise<Receiver> {
  const root = await mkdtemp(join(tmpdir(), "postern-webhook-receiver-"));
  await mkdir(join(root, "tmp"));
  const requests: ReceivedRequest[] = [];
  let lastAnswered: string | undefined;
  let sequence = 0;
  const receiver = { mode: { kind: "ok" } as ReceiverMode };
  const server: Server = createServer((request, response) => {
    const mode = receiver.mode;
    const record: ReceivedRequest = {
      headers: request.headers,
      size: 0,
      signatureValid: undefined,
      envelope: undefined,
      answered: undefined,
    };
    requests.push(record);
    const envelope = request.headers[envelopeHeader] as string | undefined;
    const timestamp = request.headers[timestampHeader] as string | undefined;
    const hmac =
      options.secret && envelope && timestamp ? startSignature(options.secret, timestamp, envelope) : undefined;
    const tmp = join(root, "tmp", randomBytes(8).toString("hex"));
    request.on("data", (chunk: Buffer) => {
      record.size += chunk.length;
      hmac?.update(chunk);
      if (mode.kind === "cut" && record.size >= mode.afterBytes) request.socket.destroy();
    });
    if (mode.kind === "hang") {
      request.resume();
      return;
    }
    pipeline(request, createWriteStream(tmp))
      .then(async () => {
        if (hmac) record.signatureValid = `v1=${hmac.digest("hex")}` === request.headers[signatureHeader];
        if (envelope) record.envelope = JSON.parse(envelope) as WebhookEnvelope;
        const status = mode.kind === "status" ? mode.status : 200;
        if (status >= 200 && status < 300) {
          const name = `${String(++sequence).padStart(6, "0")}-${randomBytes(4).toString("hex")}`;
          for (const recipient of record.envelope?.recipients ?? []) {
            const dir = join(root, "mail", recipient.toLowerCase());
            await mkdir(dir, { recursive: true });
            await copyFile(tmp, join(dir, name));
          }
          lastAnswered = join(root, "last");
          await rename(tmp, lastAnswered);
        } else await rm(tmp, { force: true });
        record.answered = status;
        response.writeHead(status, { "content-type": "text/plain" }).end(`answered ${status}\n`);
      })
      .catch(() => rm(tmp, { force: true }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/inbound`,
    get mode() {
      return receiver.mode;
    },
    set mode(mode: ReceiverMode) {
      receiver.mode = mode;
    },
    requests,
    async read(recipient) {
      const dir = join(root, "mail", recipient.toLowerCase());
      const names = await readdir(dir).catch(() => [] as string[]);
      return Promise.all(names.sort().map((name) => readFile(join(dir, name))));
    },
    async lastJson() {
      if (!lastAnswered) throw new Error("nothing answered yet");
      return JSON.parse(await readFile(lastAnswered, "utf8"));
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(root, { recursive: true, force: true });
    },
  };
}
