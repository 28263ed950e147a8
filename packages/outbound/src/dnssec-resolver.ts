// A stub resolver that asks a validating recursive resolver (Unbound, BIND, Knot Resolver on
// 127.0.0.1) and reads the AD bit of its answers, for DANE (RFC 7672 needs to know whether an
// MX or TLSA RRset is DNSSEC-secure). Node's resolver neither sets DO nor shows AD, so the
// queries are written with dns-packet: UDP with EDNS0 (DO, and AD asked for, RFC 6840 §5.7), TCP
// when the answer is truncated. Validation is the resolver's job — run it on this host or over a
// link you trust (RFC 7672 §1.3: the path to it must be secure).
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { isIP, Socket } from "node:net";
import * as packet from "dns-packet";

export interface SecureAnswer<T = unknown> {
  /** NOERROR with data, NOERROR without (NODATA), NXDOMAIN; anything else is `failure`. */
  readonly rcode: "NOERROR" | "NXDOMAIN";
  /** The resolver validated the answer (AD set): DNSSEC-secure, including authenticated denial. */
  readonly secure: boolean;
  /** The records of the asked type (RRSIGs and other types left out). */
  readonly records: readonly T[];
}

/** The lookup could not be answered: SERVFAIL (which a validator returns for bogus data), a timeout… */
export class SecureLookupError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "SecureLookupError";
    this.code = code;
  }
}

export interface ValidatingResolverOptions {
  /** "127.0.0.1:53", "[::1]:53" or a bare address (port 53). */
  server: string;
  timeoutMs: number;
}

function parseServer(server: string): { address: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  if (bracketed) return { address: bracketed[1]!, port: Number(bracketed[2] ?? 53) };
  if (isIP(server) === 6) return { address: server, port: 53 };
  const [address, port] = server.split(":");
  return { address: address!, port: Number(port ?? 53) };
}

export class ValidatingResolver {
  readonly #address: string;
  readonly #port: number;
  readonly #timeoutMs: number;

  constructor(options: ValidatingResolverOptions) {
    const { address, port } = parseServer(options.server);
    this.#address = address;
    this.#port = port;
    this.#timeoutMs = options.timeoutMs;
  }

  async query<T = unknown>(name: string, type: packet.RecordType): Promise<SecureAnswer<T>> {
    const query: packet.Packet = {
      type: "query",
      id: randomInt(0, 65536),
      flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
      questions: [{ type, name, class: "IN" }],
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096, flags: packet.DNSSEC_OK } as packet.Answer],
    };
    let response = await this.#udp(query);
    if ((response.flags ?? 0) & packet.TRUNCATED_RESPONSE) response = await this.#tcp(query);
    if (response.id !== query.id) throw new SecureLookupError("EBADRESP", `${type} ${name}: answer to another query`);
    const rcode = (response as { rcode?: string }).rcode ?? "NOERROR";
    if (rcode !== "NOERROR" && rcode !== "NXDOMAIN") {
      throw new SecureLookupError(rcode, `${type} ${name}: ${rcode} from ${this.#address}`);
    }
    const wanted = name.toLowerCase().replace(/\.$/, "");
    const records = (response.answers ?? [])
      .filter((answer) => answer.type === type && answer.name.toLowerCase().replace(/\.$/, "") === wanted)
      .map((answer) => (answer as unknown as { data: T }).data);
    return { rcode, secure: Boolean((response.flags ?? 0) & packet.AUTHENTIC_DATA), records };
  }

  #udp(query: packet.Packet): Promise<packet.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIP(this.#address) === 6 ? "udp6" : "udp4");
      const timer = setTimeout(() => {
        socket.close();
        reject(new SecureLookupError("ETIMEOUT", `no answer from ${this.#address}:${this.#port}`));
      }, this.#timeoutMs);
      socket.on("message", (message) => {
        let decoded: packet.DecodedPacket;
        try {
          decoded = packet.decode(message);
        } catch {
          return; // not a DNS answer: keep waiting for one until the deadline
        }
        if (decoded.id !== query.id) return;
        clearTimeout(timer);
        socket.close();
        resolve(decoded);
      });
      socket.on("error", (error) => {
        clearTimeout(timer);
        socket.close();
        reject(new SecureLookupError("ECONNREFUSED", error.message));
      });
      socket.send(packet.encode(query), this.#port, this.#address);
    });
  }

  #tcp(query: packet.Packet): Promise<packet.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      let buffered = Buffer.alloc(0);
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(error instanceof SecureLookupError ? error : new SecureLookupError("ECONNREFUSED", error.message));
      };
      const timer = setTimeout(
        () => fail(new SecureLookupError("ETIMEOUT", `no TCP answer from ${this.#address}:${this.#port}`)),
        this.#timeoutMs,
      );
      socket.on("error", fail);
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
        clearTimeout(timer);
        socket.destroy();
        try {
          resolve(packet.streamDecode(buffered) as packet.DecodedPacket);
        } catch (error) {
          reject(new SecureLookupError("EBADRESP", (error as Error).message));
        }
      });
      socket.connect(this.#port, this.#address, () => socket.write(packet.streamEncode(query)));
    });
  }
}
