// Transaction latency at a fixed offered load, for compare.ts: an open-loop SMTP client in its
// own process (so its CPU and event loop are not the bench's, which also answers the fake DNS).
// Arrivals come at random (Poisson) at `rate` per second, independent of how fast the server
// answers — queueing shows up as latency, as it would with real senders. `rate: "peak"` runs it
// closed-loop instead (20 sessions sending as fast as the server answers): the most this client
// gets from this server, which the open-loop loads are fractions of (smtp-source, written in C,
// costs the machine less per message, so its peak would overload this client's runs). A transaction is timed
// from its arrival to the 250 after the final dot: with one message per connection that includes
// connect, greeting, HELO, MAIL, RCPT and DATA; with connection reuse (`connections` > 0, kept
// open like smtp-source -d) it includes the wait for a free connection.
//   forked by compare.ts; receives one LatencyRequest over IPC, answers one LatencyResult.
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";

export interface LatencyRequest {
  port: number;
  /** Offered transactions per second, or "peak": closed loop, 20 sessions back to back. */
  rate: number | "peak";
  seconds: number;
  /** 0: one message per connection; n: n connections kept open, each sending message after message. */
  connections: number;
  payload: { length: number } | { file: string };
}

export interface LatencyResult {
  offered: number;
  /** Transactions answered 250 in the measured time. */
  completed: number;
  /** Transactions answered 250 in all, the warm-up's too (what a store must hold afterwards). */
  acknowledged: number;
  failed: number;
  firstError: string | undefined;
  /** Completed transactions per second over the measured time. */
  achieved: number;
  p50: number;
  p99: number;
  max: number;
}

const warmupSeconds = 0.5;
/** Transactions in flight at most with one message per connection (beyond: counted as failed). */
const maxInFlight = 2000;

/** The message as smtp-source sends it: a few header lines, then lines of 80 octets; dot-stuffed. */
function messageBytes(payload: LatencyRequest["payload"]): Buffer {
  let text: string;
  if ("file" in payload) {
    text = readFileSync(payload.file, "latin1").replace(/\r?\n/g, "\r\n");
  } else {
    const header = "From: <bench@example.org>\r\nTo: <user@bench.test>\r\nSubject: latency\r\n\r\n";
    const line = `${"x".repeat(78)}\r\n`;
    text = header + line.repeat(Math.ceil(payload.length / line.length));
  }
  if (!text.endsWith("\r\n")) text += "\r\n";
  return Buffer.from(`${text.replace(/^\./gm, "..")}.\r\n`, "latin1");
}

/** An SMTP client connection that sends a command and resolves with the reply code. */
class Session {
  readonly socket: Socket;
  #buffer = "";
  #waiting: ((code: number, text: string) => void) | undefined;
  #failed: ((error: Error) => void) | undefined;

  constructor(port: number) {
    this.socket = connect({ port, host: "127.0.0.1" });
    this.socket.setNoDelay(true);
    this.socket.setEncoding("latin1");
    this.socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      // A reply ends with a line "ddd text" (a space after the code, not a dash).
      const end = /(?:^|\n)(\d{3}) [^\n]*\n/.exec(this.#buffer);
      if (!end) return;
      const text = this.#buffer.slice(0, end.index + end[0].length);
      this.#buffer = this.#buffer.slice(end.index + end[0].length);
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(Number(end[1]), text.trim());
    });
    const fail = (error: Error) => {
      const failed = this.#failed;
      this.#failed = undefined;
      this.#waiting = undefined;
      failed?.(error);
    };
    this.socket.on("error", fail);
    this.socket.on("close", () => fail(new Error("connection closed")));
  }

  /** Sends `data` (nothing: just waits) and resolves with the next reply, if its code is `expected`. */
  exchange(data: string | Buffer | undefined, expected: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#failed = reject;
      this.#waiting = (code, text) => {
        this.#failed = undefined;
        if (code === expected) resolve();
        else reject(new Error(`expected ${expected}, got: ${text}`));
      };
      if (data !== undefined) this.socket.write(data);
    });
  }

  async open(): Promise<void> {
    await this.exchange(undefined, 220);
    await this.exchange("HELO client.bench\r\n", 250);
  }

  async transaction(message: Buffer): Promise<void> {
    await this.exchange("MAIL FROM:<bench@example.org>\r\n", 250);
    await this.exchange("RCPT TO:<user@bench.test>\r\n", 250);
    await this.exchange("DATA\r\n", 354);
    await this.exchange(message, 250);
  }

  close(): void {
    this.socket.end("QUIT\r\n");
    this.socket.destroySoon();
  }
}

/** A small seeded generator, so every server gets the same arrival pattern. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

export async function measureLatency(request: LatencyRequest): Promise<LatencyResult> {
  const message = messageBytes(request.payload);
  const next = random(17);
  const latencies: number[] = [];
  let offered = 0;
  let completed = 0;
  let acknowledged = 0;
  let failed = 0;
  let firstError: string | undefined;
  let inFlight = 0;
  const started = performance.now();
  const measureFrom = started + warmupSeconds * 1000;
  const stopAt = measureFrom + request.seconds * 1000;

  const record = (arrival: number) => {
    acknowledged++;
    if (arrival < measureFrom) return;
    latencies.push(performance.now() - arrival);
    completed++;
  };
  const fail = (arrival: number, error: Error) => {
    if (arrival < measureFrom) return;
    failed++;
    firstError ??= error.message;
  };

  // With reuse: connections opened first; arrivals wait in a queue for a free one.
  const queue: number[] = [];
  const idle: Session[] = [];
  const serve = (session: Session) => {
    const arrival = queue.shift();
    if (arrival === undefined) {
      idle.push(session);
      return;
    }
    inFlight++;
    session.transaction(message).then(
      () => {
        inFlight--;
        record(arrival);
        serve(session);
      },
      (error: Error) => {
        inFlight--;
        fail(arrival, error);
      },
    );
  };
  if (request.connections > 0) {
    const sessions = await Promise.all(
      Array.from({ length: request.connections }, async () => {
        const session = new Session(request.port);
        await session.open();
        return session;
      }),
    );
    idle.push(...sessions);
  }

  const arrive = (arrival: number) => {
    if (arrival >= measureFrom) offered++;
    if (request.connections > 0) {
      queue.push(arrival);
      const session = idle.pop();
      if (session) serve(session);
      return;
    }
    if (inFlight >= maxInFlight) {
      fail(arrival, new Error(`more than ${maxInFlight} transactions in flight`));
      return;
    }
    inFlight++;
    const session = new Session(request.port);
    session
      .open()
      .then(() => session.transaction(message))
      .then(
        () => {
          inFlight--;
          record(arrival);
          session.close();
        },
        (error: Error) => {
          inFlight--;
          fail(arrival, error);
          session.socket.destroy();
        },
      );
  };

  if (request.rate === "peak") {
    // Closed loop: each worker starts its next transaction when the last one is answered — on
    // its own kept-open session with reuse, on a new connection each time without.
    const workers = request.connections > 0 ? idle.splice(0) : Array.from({ length: 20 }, () => undefined);
    await Promise.all(
      workers.map(async (session) => {
        while (performance.now() < stopAt) {
          const arrival = performance.now();
          if (arrival >= measureFrom) offered++;
          const current = session ?? new Session(request.port);
          await (session ? session.transaction(message) : current.open().then(() => current.transaction(message))).then(
            () => {
              record(arrival);
              if (!session) current.close();
            },
            (error: Error) => {
              fail(arrival, error);
              current.socket.destroy();
            },
          );
          if (session?.socket.destroyed) return;
        }
      }),
    );
    for (const session of workers) session?.close();
    return summary();
  }

  // Arrivals: exponential gaps at `rate`; a timer wakes up for each due batch.
  const rate = request.rate;
  let due = started;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (due <= now && due < stopAt) {
        arrive(due);
        due += (-Math.log(1 - next()) / rate) * 1000;
      }
      if (due >= stopAt) resolve();
      else setTimeout(tick, Math.max(0, due - performance.now()));
    };
    tick();
  });
  // The last arrivals finish (or fail) before the figures are taken; a stuck server gets 30 s.
  const drainUntil = performance.now() + 30_000;
  while ((inFlight > 0 || queue.length > 0) && performance.now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  failed += queue.length;
  for (const session of idle) session.close();
  return summary();

  function summary(): LatencyResult {
    const sorted = latencies.sort((a, b) => a - b);
    return {
      offered,
      completed,
      acknowledged,
      failed,
      firstError,
      achieved: completed / request.seconds,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted.at(-1) ?? Number.NaN,
    };
  }
}

if (process.send) {
  process.once("message", async (request: LatencyRequest) => {
    const result = await measureLatency(request);
    process.send!(result, () => process.exit(0));
  });
}
