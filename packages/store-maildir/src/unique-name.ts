// Maildir file names (https://cr.yp.to/proto/maildir.html): "<seconds>.<unique>.<host>", where the
// unique part here is microseconds, PID, a per-process counter and random bytes, so two processes
// or two deliveries in one microsecond never collide. Dovecot reads ",S=<size>" (file size) and
// ",W=<size>" (size with CRLF line ends) from the name and then need not stat or read the file.
import { randomFillSync } from "node:crypto";
import { hostname } from "node:os";

let deliveries = 0;

/** The host part with "/" and ":" encoded as the Maildir spec says (and "," for Dovecot's fields). */
function encodedHost(): string {
  return hostname().replace(/\//g, "\\057").replace(/:/g, "\\072").replace(/,/g, "\\054") || "localhost";
}

// Read once: os.hostname() is a uname(2) call (and process.pid a getpid(2)); a name only needs
// them to tell hosts and processes apart, and a worker process loads this module afresh.
const host = encodedHost();
const pid = process.pid;

// Random bytes drawn 4 KB at a time: one getrandom (and the getpid OpenSSL adds) per 512 names
// instead of per delivery.
const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;

function randomHex(bytes: number): string {
  if (randomOffset + bytes > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const hex = randomPool.toString("hex", randomOffset, randomOffset + bytes);
  randomOffset += bytes;
  return hex;
}

export function uniqueName(): string {
  // Microseconds since the epoch: ~1.8e15, well inside a double's exact integers (2^53 ≈ 9e15).
  const micros = Math.round((performance.timeOrigin + performance.now()) * 1000);
  const seconds = Math.floor(micros / 1_000_000);
  const usec = micros - seconds * 1_000_000;
  deliveries = (deliveries + 1) % Number.MAX_SAFE_INTEGER;
  return `${seconds}.M${usec}P${pid}Q${deliveries}R${randomHex(8)}.${host}`;
}

/** The name in new/: the unique name with the sizes Dovecot uses. */
export function deliveredName(unique: string, size: number, crlfSize: number): string {
  return `${unique},S=${size},W=${crlfSize}`;
}
