// One socket to one milter: connect with a deadline, write with backpressure, read the milter's
// packets one at a time. Every wait has an absolute deadline (the stage's timeout), so a milter
// that hangs, sends SMFIR_PROGRESS forever or stops reading cannot hold a session past it.
import { connect as connectSocket, type Socket } from "node:net";
import { MilterError } from "../errors.ts";
import { PacketReader } from "./packet-reader.ts";
import { decodeReply, type MilterReply } from "./packets.ts";

export type MilterAddress = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

export function describeAddress(address: MilterAddress): string {
  return address.kind === "unix" ? `unix:${address.path}` : `inet:${address.host}:${address.port}`;
}

type Waiter = { resolve(reply: MilterReply): void; reject(error: Error): void };

export class MilterConnection {
  readonly #socket: Socket;
  readonly #reader = new PacketReader();
  readonly #replies: MilterReply[] = [];
  #waiter: Waiter | undefined;
  #failure: Error | undefined;
  /** Pending writes waiting for drain, told when the connection fails. */
  readonly #failureListeners = new Set<(error: Error) => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (bytes: Buffer) => {
      try {
        for (const raw of this.#reader.push(bytes)) this.#deliver(decodeReply(raw.command, raw.data));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.#fail(new MilterError("POSTERN_MILTER_PROTOCOL", message, { cause: error }));
        socket.destroy();
      }
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const broken = error.code === "EPIPE" || error.code === "ECONNRESET";
      this.#fail(
        new MilterError(
          broken ? "POSTERN_MILTER_CLOSED" : "POSTERN_MILTER_PROTOCOL",
          broken ? `the milter broke the connection (${error.code})` : `socket error: ${error.message}`,
          { cause: error },
        ),
      );
    });
    socket.on("close", () => {
      const partial = this.#reader.buffered > 0 ? " in the middle of a packet" : "";
      this.#fail(new MilterError("POSTERN_MILTER_CLOSED", `the milter closed the connection${partial}`));
    });
  }

  /** Connects, or rejects with POSTERN_MILTER_UNREACHABLE by `deadline` (ms since the epoch). */
  static open(address: MilterAddress, deadline: number): Promise<MilterConnection> {
    return new Promise((resolve, reject) => {
      const socket =
        address.kind === "unix"
          ? connectSocket({ path: address.path })
          : connectSocket({ host: address.host, port: address.port });
      socket.setNoDelay(true);
      const timer = setTimeout(
        () => {
          socket.destroy();
          reject(
            new MilterError(
              "POSTERN_MILTER_UNREACHABLE",
              `no connection to ${describeAddress(address)} within ${Math.max(0, deadline - started)} ms`,
            ),
          );
        },
        Math.max(0, deadline - Date.now()),
      );
      const started = Date.now();
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new MilterConnection(socket));
      });
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new MilterError(
            "POSTERN_MILTER_UNREACHABLE",
            `cannot connect to ${describeAddress(address)} (${error.code ?? error.message})`,
            { cause: error },
          ),
        );
      });
    });
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Writes `bytes`; resolves once the socket took them (waits for drain past its buffer). */
  async write(bytes: Buffer, deadline: number): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (this.#socket.write(bytes)) return;
    await new Promise<void>((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.#socket.off("drain", onDrain);
        this.#failureListeners.delete(finish);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => finish();
      const timer = setTimeout(
        () => finish(new MilterError("POSTERN_MILTER_TIMEOUT", "the milter stopped reading what we sent")),
        Math.max(0, deadline - Date.now()),
      );
      this.#socket.once("drain", onDrain);
      this.#failureListeners.add(finish);
    });
  }

  /** The milter's next reply; SMFIR_PROGRESS only says it is still working and is skipped. */
  async read(deadline: number): Promise<MilterReply> {
    for (;;) {
      const reply = await this.#next(deadline);
      if (reply.type !== "progress") return reply;
    }
  }

  /** Closes the socket at once (after QUIT, or to give up on a milter). */
  close(): void {
    this.#socket.destroy();
  }

  /** Sends `bytes` and closes after they were written, without waiting for anything. */
  end(bytes: Buffer): void {
    if (this.#failure) {
      this.#socket.destroy();
      return;
    }
    this.#socket.end(bytes);
    // A milter that never closes its side must not keep the socket open.
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #next(deadline: number): Promise<MilterReply> {
    const queued = this.#replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<MilterReply>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.#waiter = undefined;
          reject(new MilterError("POSTERN_MILTER_TIMEOUT", "the milter did not answer in time"));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.#waiter = {
        resolve(reply) {
          clearTimeout(timer);
          resolve(reply);
        },
        reject(error) {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  #deliver(reply: MilterReply): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve(reply);
    } else {
      this.#replies.push(reply);
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
    for (const listener of this.#failureListeners) listener(this.#failure);
  }
}
