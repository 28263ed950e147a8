// Test support (not exported): Debian's postsrsd (1.x: Postfix's TCP lookup-table protocol,
// "get <address>" → "200 <address>" / "500 <reason>") started on loopback with its secrets in a
// temp folder, and a client for its forward and reverse tables.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, stopChild, waitForListener } from "./test-daemon.ts";

export interface TableReply {
  code: number;
  value: string;
}

export interface Postsrsd {
  forward(address: string): Promise<TableReply>;
  reverse(address: string): Promise<TableReply>;
  stop(): Promise<void>;
}

class TableClient {
  private readonly socket: Socket;
  private buffered = "";
  private waiting: ((line: string) => void)[] = [];

  constructor(port: number) {
    this.socket = createConnection({ port, host: "127.0.0.1" });
    this.socket.setEncoding("utf8");
    this.socket.on("data", (chunk: string) => {
      this.buffered += chunk;
      let newline = this.buffered.indexOf("\n");
      while (newline >= 0) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        this.waiting.shift()?.(line);
        newline = this.buffered.indexOf("\n");
      }
    });
  }

  /** Postfix's tcp_table encoding: %XX for anything that is not visible ASCII, and "%" itself. */
  get(key: string): Promise<TableReply> {
    const encoded = key.replace(/[^\x21-\x7e]|%/g, (char) =>
      [...Buffer.from(char)].map((byte) => `%${byte.toString(16).padStart(2, "0")}`).join(""),
    );
    return new Promise((resolve) => {
      this.waiting.push((line) => {
        const code = Number(line.slice(0, 3));
        const value = line.slice(4);
        resolve({ code, value: code === 200 ? decodeURIComponent(value) : value });
      });
      this.socket.write(`get ${encoded}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export async function startPostsrsd(options: {
  domain: string;
  secrets: string[];
  separator?: string;
}): Promise<Postsrsd> {
  const dir = await mkdtemp(join(tmpdir(), "postern-postsrsd-"));
  const secretFile = join(dir, "postsrsd.secret");
  await writeFile(secretFile, `${options.secrets.join("\n")}\n`, { mode: 0o600 });
  const [forwardPort, reversePort] = [await freePort(), await freePort()];
  const args = [
    "-s",
    secretFile,
    "-d",
    options.domain,
    "-l",
    "127.0.0.1",
    "-f",
    String(forwardPort),
    "-r",
    String(reversePort),
  ];
  if (options.separator) args.push("-a", options.separator);
  const child: ChildProcess = spawn("postsrsd", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  try {
    await waitForListener({ port: forwardPort }, child, async () => output);
    await waitForListener({ port: reversePort }, child, async () => output);
  } catch (error) {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const forward = new TableClient(forwardPort);
  const reverse = new TableClient(reversePort);
  return {
    forward: (address) => forward.get(address),
    reverse: (address) => reverse.get(address),
    async stop() {
      forward.close();
      reverse.close();
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
