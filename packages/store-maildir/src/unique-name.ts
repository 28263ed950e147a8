// Maildir file names (https://cr.yp.to/proto/maildir.html): "<seconds>.<unique>.<host>", where the
// unique part here is microseconds, PID, a per-process counter and random bytes, so two processes
// or two deliveries in one microsecond never collide. Dovecot reads ",S=<size>" (file size) and
// ",W=<size>" (size with CRLF line ends) from the name and then need not stat or read the file.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

let deliveries = 0;

/** The host part with "/" and ":" encoded as the Maildir spec says (and "," for Dovecot's fields). */
function encodedHost(): string {
  return hostname().replace(/\//g, "\\057").replace(/:/g, "\\072").replace(/,/g, "\\054") || "localhost";
}

export function uniqueName(): string {
  const micros = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
  const seconds = micros / 1_000_000n;
  const usec = micros % 1_000_000n;
  deliveries = (deliveries + 1) % Number.MAX_SAFE_INTEGER;
  return `${seconds}.M${usec}P${process.pid}Q${deliveries}R${randomBytes(8).toString("hex")}.${encodedHost()}`;
}

/** The name in new/: the unique name with the sizes Dovecot uses. */
export function deliveredName(unique: string, size: number, crlfSize: number): string {
  return `${unique},S=${size},W=${crlfSize}`;
}
