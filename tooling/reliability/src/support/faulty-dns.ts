// A DNS server whose failure mode a test switches at run time: it answers, stays silent, answers
// late, answers SERVFAIL, or answers truncated (TC set, no records) over UDP with TCP refused or
// working. @postern/testing's fake DNS has per-name SERVFAIL/TIMEOUT entries but no server-wide
// modes, delays or truncation, so this one is written here on dns-packet (UDP and TCP on one port).
import type { Socket } from "node:net";
import { bindUdpAndTcp } from "@postern/testing";
import dnsPacket from "dns-packet";

export type DnsMode =
  | { kind: "answer" }
  | { kind: "silent" }
  | { kind: "slow"; delayMs: number }
  | { kind: "servfail" }
  /** UDP answers carry TC and no records; over TCP the server answers only when `tcp` is true. */
  | { kind: "truncated"; tcp: boolean };

export interface ZoneRecords {
  A?: string[];
  TXT?: string[];
  MX?: { exchange: string; priority: number }[];
}

export interface FaultyDns {
  readonly port: number;
  /** For `dns.servers`. */
  readonly server: string;
  mode: DnsMode;
  /** Queries received, by transport. */
  readonly queries: { udp: number; tcp: number };
  close(): Promise<void>;
}

const normalize = (name: string) => name.toLowerCase().replace(/\.$/, "");
const RCODE_NXDOMAIN = 3;
const RCODE_SERVFAIL = 2;

function respond(query: dnsPacket.Packet, zone: Record<string, ZoneRecords>, mode: DnsMode, udp: boolean): Buffer {
  const question = query.questions?.[0];
  const base = {
    type: "response" as const,
    id: query.id ?? 0,
    questions: query.questions ?? [],
  };
  const flags = dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE;
  if (mode.kind === "servfail" || !question) return dnsPacket.encode({ ...base, flags: flags | RCODE_SERVFAIL });
  if (mode.kind === "truncated" && udp) {
    return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE });
  }
  const records = zone[normalize(question.name)];
  if (!records) return dnsPacket.encode({ ...base, flags: flags | dnsPacket.AUTHORITATIVE_ANSWER | RCODE_NXDOMAIN });
  const answers: dnsPacket.Answer[] = [];
  const name = question.name;
  if (question.type === "A") for (const data of records.A ?? []) answers.push({ type: "A", name, ttl: 60, data });
  if (question.type === "TXT") for (const data of records.TXT ?? []) answers.push({ type: "TXT", name, ttl: 60, data });
  if (question.type === "MX")
    for (const data of records.MX ?? [])
      answers.push({ type: "MX", name, ttl: 60, data: { exchange: data.exchange, preference: data.priority } });
  return dnsPacket.encode({ ...base, flags: flags | dnsPacket.AUTHORITATIVE_ANSWER, answers });
}

export async function startFaultyDns(zone: Record<string, ZoneRecords>): Promise<FaultyDns> {
  const normalizedZone = Object.fromEntries(Object.entries(zone).map(([name, records]) => [normalize(name), records]));
  const state: { mode: DnsMode } = { mode: { kind: "answer" } };
  const queries = { udp: 0, tcp: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const later = (delayMs: number, work: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      work();
    }, delayMs);
    timers.add(timer);
  };

  const sockets = new Set<Socket>();

  const answer = (query: dnsPacket.Packet, isUdp: boolean, send: (bytes: Buffer) => void) => {
    const mode = state.mode;
    if (mode.kind === "silent") return;
    const reply = () => send(respond(query, normalizedZone, mode, isUdp));
    if (mode.kind === "slow") later(mode.delayMs, reply);
    else reply();
  };

  const answerUdp = (bytes: Buffer, reply: (bytes: Buffer) => void) => {
    queries.udp++;
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(bytes);
    } catch {
      return;
    }
    answer(query, true, reply);
  };

  const answerTcp = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    if (state.mode.kind === "truncated" && !state.mode.tcp) {
      socket.destroy();
      return;
    }
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        queries.tcp++;
        let query: dnsPacket.Packet;
        try {
          query = dnsPacket.decode(message);
        } catch {
          socket.destroy();
          return;
        }
        answer(query, false, (reply) => {
          const framed = Buffer.alloc(2 + reply.length);
          framed.writeUInt16BE(reply.length, 0);
          reply.copy(framed, 2);
          if (!socket.destroyed) socket.write(framed);
        });
      }
    });
  };
  const { udp, tcp, port } = await bindUdpAndTcp(answerUdp, answerTcp);

  return {
    port,
    server: `127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(mode: DnsMode) {
      state.mode = mode;
    },
    queries,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}
