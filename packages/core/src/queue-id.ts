// Queue IDs: sortable by time, unique across processes and nodes, short enough for logs and the
// 250 reply. 10 base32 chars of milliseconds + 10 of randomness (50 bits). Random bytes come from
// a pool and the time is encoded with plain arithmetic: this runs once per transaction.
import { randomFillSync } from "node:crypto";

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const pool = Buffer.allocUnsafe(4096);
let poolOffset = pool.length;

export function newQueueId(now = Date.now()): string {
  let time = "";
  let value = now;
  for (let i = 0; i < 10; i++) {
    time = alphabet[value % 32] + time;
    value = Math.floor(value / 32);
  }
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  let random = "";
  // 256 is a multiple of 32, so each byte's low five bits are uniform.
  for (let i = 0; i < 10; i++) random += alphabet[pool[poolOffset + i]! & 31];
  poolOffset += 10;
  return time + random;
}
