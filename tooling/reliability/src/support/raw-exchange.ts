// A byte-level SMTP peer for fuzzing and overload tests: writes exactly what it is given, in the
// pieces it is given, and records everything the server says until the server closes or a
// deadline passes. Unlike a real client it never waits for a reply before writing on.
import { connect, type Socket } from "node:net";

export interface Transcript {
  /** Everything received, as latin1 text. */
  readonly text: string;
  /** Complete reply lines received so far. */
  readonly lines: string[];
  /** The server closed (or reset) the connection. */
  readonly closed: boolean;
}

export interface Peer {
  readonly socket: Socket;
  transcript(): Transcript;
  /** Writes one piece; resolves once it was handed to the kernel (or the socket is gone). */
  write(bytes: Buffer | string): Promise<void>;
  /**
   * Resolves with the next line (after those earlier calls returned) matching `pattern`; rejects
   * on close or after `timeoutMs`.
   */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves true once the server closed the connection, false if it is still open after `timeoutMs`. */
  waitForClose(timeoutMs: number): Promise<boolean>;
  destroy(): void;
}

export async function openPeer(port: number, options: { host?: string; localAddress?: string } = {}): Promise<Peer> {
  const socket = connect({ port, host: options.host ?? "127.0.0.1", localAddress: options.localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return peerOn(socket);
}

/** Wraps an already connected socket (e.g. one left after a STARTTLS attempt). */
export function peerOn(socket: Socket): Peer {
  let text = "";
  let closed = false;
  /** Lines before this index were already looked at by waitForLine. */
  let cursor = 0;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    text += chunk;
    notify();
  });
  socket.on("error", () => undefined);
  socket.on("close", () => {
    closed = true;
    notify();
  });
  const lines = () => text.split("\r\n").slice(0, -1);

  return {
    socket,
    transcript: () => ({ text, lines: lines(), closed }),
    write(bytes) {
      if (closed || socket.destroyed || !socket.writable) return Promise.resolve();
      return new Promise((resolve) => socket.write(bytes, () => resolve()));
    },
    waitForLine(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const all = lines();
          for (; cursor < all.length; cursor++) {
            if (pattern.test(all[cursor]!)) {
              done();
              resolve(all[cursor++]!);
              return;
            }
          }
          if (closed) {
            done();
            reject(new Error(`connection closed before ${pattern}; received: ${JSON.stringify(text.slice(-500))}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `no line matching ${pattern} within ${timeoutMs} ms; received: ${JSON.stringify(text.slice(-500))}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    waitForClose(timeoutMs) {
      if (closed) return Promise.resolve(true);
      return new Promise((resolve) => {
        const check = () => {
          if (!closed) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(true);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          resolve(false);
        }, timeoutMs);
        listeners.add(check);
      });
    },
    destroy() {
      socket.destroy();
    },
  };
}
