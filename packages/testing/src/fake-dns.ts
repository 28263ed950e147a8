// A real DNS server on loopback (UDP and TCP on one port) answering from an in-memory zone, so
// tests exercise core's resolver exactly as production does: Node's resolver, packets, timeouts.
// Names can also answer NXDOMAIN, SERVFAIL, or never answer (a timeout).
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { type AddressInfo, createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import * as packet from "dns-packet";

export interface MxRecord {
  exchange: string;
  priority: number;
}

export interface RecordSet {
  A?: string[];
  AAAA?: string[];
  /** "10 mx.example.com" or { exchange, priority }. */
  MX?: (MxRecord | string)[];
  /** One entry per TXT record; strings longer than 255 octets are split into chunks. */
  TXT?: (string | string[])[];
  PTR?: string[];
  CNAME?: string;
  NS?: string[];
  TLSA?: { usage: number; selector: number; matchingType: number; certificate: string }[];
}

export type ZoneEntry = RecordSet | "NXDOMAIN" | "SERVFAIL" | "TIMEOUT";
export type Zone = Record<string, ZoneEntry>;

export interface FakeDns {
  /** "127.0.0.1:port", for `dns.servers` in the server config. */
  readonly servers: string[];
  readonly port: number;
  /** Replaces (or adds) a name's records. */
  set(name: string, entry: ZoneEntry): void;
  /** How many queries each "TYPE name" received. */
  readonly queries: Map<string, number>;
  close(): Promise<void>;
}

const normalize = (name: string) => name.toLowerCase().replace(/\.$/, "");

/** The in-addr.arpa / ip6.arpa name for an address, for PTR entries. */
export function reverseName(ip: string): string {
  if (!ip.includes(":")) return `${ip.split(".").reverse().join(".")}.in-addr.arpa`;
  const [head = "", tail = ""] = ip.split("::");
  const headParts = head ? head.split(":") : [];
  const tailParts = tail ? tail.split(":") : [];
  const missing = 8 - headParts.length - tailParts.length;
  const groups = [...headParts, ...Array(Math.max(0, missing)).fill("0"), ...tailParts];
  const nibbles = groups.map((group) => group.padStart(4, "0")).join("");
  return `${[...nibbles].reverse().join(".")}.ip6.arpa`;
}

function txtChunks(value: string | string[]): Buffer[] {
  if (Array.isArray(value)) return value.map((part) => Buffer.from(part));
  const bytes = Buffer.from(value);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += 255) chunks.push(bytes.subarray(offset, offset + 255));
  return chunks.length > 0 ? chunks : [Buffer.alloc(0)];
}

function answersFor(name: string, type: string, set: RecordSet): packet.Answer[] {
  const base = { name, ttl: 60, class: "IN" as const };
  switch (type) {
    case "A":
    case "AAAA":
    case "PTR":
    case "NS":
      return (set[type] ?? []).map((data) => ({ ...base, type, data }) as packet.Answer);
    case "CNAME":
      return set.CNAME ? [{ ...base, type: "CNAME", data: set.CNAME }] : [];
    case "MX":
      return (set.MX ?? []).map((mx) => {
        const record =
          typeof mx === "string" ? { priority: Number(mx.split(/\s+/)[0]), exchange: mx.split(/\s+/)[1] ?? "" } : mx;
        return { ...base, type: "MX", data: { preference: record.priority, exchange: record.exchange } };
      });
    case "TXT":
      return (set.TXT ?? []).map((value) => ({ ...base, type: "TXT", data: txtChunks(value) }));
    case "TLSA":
      return (set.TLSA ?? []).map(
        (record) =>
          ({
            ...base,
            type: "TLSA",
            data: {
              usage: record.usage,
              selector: record.selector,
              matchingType: record.matchingType,
              certificate: Buffer.from(record.certificate, "hex"),
            },
          }) as packet.Answer,
      );
    default:
      return [];
  }
}

/**
 * A UDP answer larger than the client accepts (512 octets, or its EDNS size) goes back empty with
 * TC set, so the client retries over TCP as with a real server.
 */
function truncateForUdp(queryBytes: Buffer, response: Buffer): Buffer {
  const query = packet.decode(queryBytes);
  const opt = query.additionals?.find((record) => record.type === "OPT") as { udpPayloadSize?: number } | undefined;
  const limit = Math.max(512, opt?.udpPayloadSize ?? 512);
  if (response.length <= limit) return response;
  const full = packet.decode(response);
  return packet.encode({ ...full, flags: (full.flags ?? 0) | packet.TRUNCATED_RESPONSE, answers: [] });
}

/**
 * UDP and TCP on one port, as a client falls back from a truncated UDP answer to TCP on the same
 * port. The UDP port comes from the system; its TCP twin can be taken (an ephemeral port of some
 * connection on a busy machine), and a TCP fallback then met ECONNREFUSED: a large answer, such as
 * a 2048-bit DKIM key, failed now and then. So a taken TCP port means another pair is tried.
 */
export async function bindUdpAndTcp(
  /** A datagram came; `reply` sends one back to where it came from. */
  onUdpMessage: (message: Buffer, reply: (bytes: Buffer) => void) => void,
  onTcpConnection: (socket: Socket) => void,
  /** The port of the first try (0: the system picks); a test sets one whose TCP side is taken. */
  firstPort = 0,
): Promise<{ udp: UdpSocket; tcp: TcpServer; port: number }> {
  const attempts = 50;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const udp: UdpSocket = createSocket("udp4");
    udp.on("message", (message: Buffer, remote: RemoteInfo) =>
      onUdpMessage(message, (bytes) => udp.send(bytes, remote.port, remote.address)),
    );
    const tcp: TcpServer = createTcpServer(onTcpConnection);
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(attempt === 0 ? firstPort : 0, "127.0.0.1", () => resolve());
      });
      const port = (udp.address() as AddressInfo).port;
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, "127.0.0.1", () => resolve());
      });
      return { udp, tcp, port };
    } catch (error) {
      lastError = error;
      await new Promise<void>((resolve) => udp.close(() => resolve())).catch(() => undefined);
    }
  }
  throw new Error(`fake DNS: no port free for both UDP and TCP after ${attempts} tries`, { cause: lastError });
}

export async function startFakeDns(initial: Zone = {}): Promise<FakeDns> {
  const zone = new Map<string, ZoneEntry>();
  for (const [name, entry] of Object.entries(initial)) zone.set(normalize(name), entry);
  const queries = new Map<string, number>();

  /** Builds the response, or undefined to stay silent (a timeout). */
  const respond = (query: packet.Packet): Buffer | undefined => {
    const question = query.questions?.[0];
    if (!question) return undefined;
    const name = normalize(question.name);
    const key = `${question.type} ${name}`;
    queries.set(key, (queries.get(key) ?? 0) + 1);
    const entry = zone.get(name);
    if (entry === "TIMEOUT") return undefined;
    const reply: packet.Packet = {
      id: query.id,
      type: "response",
      flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
      questions: [question],
      answers: [],
    };
    if (entry === undefined || entry === "NXDOMAIN")
      reply.flags! |= 3; // rcode NXDOMAIN
    else if (entry === "SERVFAIL") reply.flags! |= 2;
    else {
      reply.answers = answersFor(question.name, question.type, entry);
      if (reply.answers.length === 0 && entry.CNAME && question.type !== "CNAME") {
        reply.answers = answersFor(question.name, "CNAME", entry);
        const target = zone.get(normalize(entry.CNAME));
        if (typeof target === "object") reply.answers.push(...answersFor(entry.CNAME, question.type, target));
      }
    }
    return packet.encode(reply);
  };

  const answerUdp = (message: Buffer, reply: (bytes: Buffer) => void) => {
    let response: Buffer | undefined;
    try {
      response = respond(packet.decode(message));
    } catch {
      return;
    }
    if (response) reply(truncateForUdp(message, response));
  };

  const sockets = new Set<Socket>();
  const answerTcp = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on("data", (data) => {
      buffered = Buffer.concat([buffered, data]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        try {
          const response = respond(packet.decode(message));
          if (response) {
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(response.length);
            socket.write(Buffer.concat([prefix, response]));
          }
        } catch {
          socket.destroy();
        }
      }
    });
  };

  const { udp, tcp, port } = await bindUdpAndTcp(answerUdp, answerTcp);

  return {
    servers: [`127.0.0.1:${port}`],
    port,
    queries,
    set(name, entry) {
      zone.set(normalize(name), entry);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}
