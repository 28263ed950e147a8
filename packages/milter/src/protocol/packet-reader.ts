// Reassembles milter packets from a byte stream: TCP hands over arbitrary pieces, a packet is
// whole once its 4-byte length and that many bytes have arrived. Lengths are bounded so a broken
// or hostile milter cannot make us buffer without limit.
import { MilterProtocolError } from "./packets.ts";

export interface RawPacket {
  command: string;
  data: Buffer;
}

/** The largest packet accepted: 1 MiB of data (the largest size negotiable, SMFIP_MDS_1M) + slack. */
export const maxPacketLength = 1024 * 1024 + 64;

export class PacketReader {
  #pending: Buffer[] = [];
  #pendingLength = 0;

  /** Adds bytes; returns the packets they complete, in order. */
  push(bytes: Buffer): RawPacket[] {
    this.#pending.push(bytes);
    this.#pendingLength += bytes.length;
    const packets: RawPacket[] = [];
    while (this.#pendingLength >= 4) {
      const buffered = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
      this.#pending = [buffered];
      const length = buffered.readUInt32BE(0);
      if (length === 0) throw new MilterProtocolError("packet of length 0");
      if (length > maxPacketLength) throw new MilterProtocolError(`packet of ${length} bytes is over the limit`);
      if (buffered.length < 4 + length) break;
      packets.push({
        command: String.fromCharCode(buffered[4]!),
        // A copy: the rest of `buffered` is released once the packets are handled.
        data: Buffer.from(buffered.subarray(5, 4 + length)),
      });
      const rest = buffered.subarray(4 + length);
      this.#pending = rest.length > 0 ? [rest] : [];
      this.#pendingLength = rest.length;
    }
    return packets;
  }

  /** Bytes of an unfinished packet (a milter that closed mid-packet left these). */
  get buffered(): number {
    return this.#pendingLength;
  }
}
