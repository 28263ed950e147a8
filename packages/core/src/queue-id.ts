// Queue IDs: sortable by time, unique across processes and nodes, short enough for logs and the
// 250 reply. 10 base32 chars of milliseconds + 10 of randomness (50 bits).
import { randomBytes } from "node:crypto";

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

function base32(value: bigint, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) {
    out = alphabet[Number(value & 31n)] + out;
    value >>= 5n;
  }
  return out;
}

export function newQueueId(now = Date.now()): string {
  const random = BigInt(`0x${randomBytes(7).toString("hex")}`);
  return base32(BigInt(now), 10) + base32(random, 10);
}
