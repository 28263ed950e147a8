// Dovecot's user database through its auth-userdb socket (the auth master protocol that Dovecot's
// own lmtp and doveadm speak), so operators keep one user list for IMAP and SMTP:
//
//   → VERSION\t1\t0            ← VERSION\t1\t<minor>  SPID\t<pid>
//   → USER\t<id>\t<name>\tservice=smtp
//   ← USER\t<id>\t<name>\t<field=value>…   found (the name is Dovecot's, after its own normalizing)
//   ← NOTFOUND\t<id>                       unknown
//   ← FAIL\t<id>\treason=…                 Dovecot's userdb could not answer: tempfail
//
// Hand-written: npm has no client for this socket (its Dovecot packages speak the auth-client
// protocol, which checks passwords). One connection, requests multiplexed by id; a connection
// that breaks fails what it carried (tempfail) and the next lookup connects again.
import { connect, type Socket } from "node:net";
import { DirectoryError } from "./directory-error.ts";
import { withDeadline } from "./lookup-deadline.ts";
import { type LookupAddress, lookupAddress, type Resolution, type Resolver } from "./resolution.ts";

export interface DovecotLookupOptions {
  /** The auth-userdb socket, e.g. /run/dovecot/auth-userdb (Dovecot's base_dir). */
  socket: string;
  /** Whether Dovecot's users are full addresses (default) or local parts only. */
  username?: "address" | "localPart";
  /** The service Dovecot is told the lookup is for (default "smtp"; userdb rules may use %s). */
  service?: string;
  /** Per lookup, connection included (default 5,000 ms). */
  timeoutMs?: number;
}

// Dovecot's tab-escaping (str_tabescape): \x01 escapes itself, tab, CR and LF as \x01 + 1/t/r/n.
const escapeCodes = new Map([
  ["\x01", "1"],
  ["\t", "t"],
  ["\r", "r"],
  ["\n", "n"],
]);
const unescapeCodes = new Map([...escapeCodes].map(([char, code]) => [code, char]));

function tabEscape(value: string): string {
  let escaped = "";
  for (const char of value) {
    const code = escapeCodes.get(char);
    escaped += code === undefined ? char : `\x01${code}`;
  }
  return escaped;
}

function tabUnescape(value: string): string {
  let plain = "";
  for (let index = 0; index < value.length; index++) {
    const char = value[index]!;
    if (char === "\x01" && index + 1 < value.length) plain += unescapeCodes.get(value[++index]!) ?? value[index];
    else plain += char;
  }
  return plain;
}

type Reply = { kind: "user"; name: string } | { kind: "notfound" } | { kind: "fail"; reason: string };

interface Connection {
  socket: Socket;
  pending: Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>;
  ready: Promise<void>;
}

export function dovecotLookup(options: DovecotLookupOptions): Resolver {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const service = options.service ?? "smtp";
  const name = `dovecot ${options.socket}`;
  let connection: Connection | undefined;
  let nextId = 1;

  const open = (): Connection => {
    if (connection && !connection.socket.destroyed) return connection;
    const socket = connect(options.socket);
    const pending: Connection["pending"] = new Map();
    let buffered = "";
    let handshake: (() => void) | undefined;
    let handshakeFailed: ((error: Error) => void) | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      handshake = resolve;
      handshakeFailed = reject;
    });
    ready.catch(() => {}); // also reported through the lookup that waits on it
    const fail = (error: Error) => {
      handshakeFailed?.(error);
      for (const request of pending.values()) request.reject(error);
      pending.clear();
      if (connection?.socket === socket) connection = undefined;
      socket.destroy();
    };
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write("VERSION\t1\t0\n"));
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf("\n");
        const fields = line.split("\t");
        const [command, idText] = fields;
        if (command === "VERSION") {
          if (fields[1] !== "1") return fail(new Error(`Dovecot speaks auth master protocol ${fields[1]}, not 1`));
          continue;
        }
        if (command === "SPID") {
          handshake?.();
          continue;
        }
        const request = pending.get(Number(idText));
        if (!request) continue;
        pending.delete(Number(idText));
        if (command === "USER") request.resolve({ kind: "user", name: tabUnescape(fields[2] ?? "") });
        else if (command === "NOTFOUND") request.resolve({ kind: "notfound" });
        else {
          const reason =
            fields
              .slice(2)
              .find((field) => field.startsWith("reason="))
              ?.slice(7) ??
            command ??
            "";
          request.resolve({ kind: "fail", reason: tabUnescape(reason) });
        }
      }
    });
    socket.on("error", (error) => fail(error));
    socket.on("close", () => fail(new Error("Dovecot closed the auth-userdb connection")));
    connection = { socket, pending, ready };
    return connection;
  };

  const ask = async (user: string, id: number): Promise<Reply> => {
    const current = open();
    await current.ready;
    return new Promise<Reply>((resolve, reject) => {
      current.pending.set(id, { resolve, reject });
      current.socket.write(`USER\t${id}\t${tabEscape(user)}\tservice=${tabEscape(service)}\n`);
    });
  };

  return {
    name,
    async resolve(address: LookupAddress): Promise<Resolution> {
      const user = options.username === "localPart" ? address.localPart : address.address;
      try {
        const id = nextId++;
        // A reply that comes after the deadline has nobody waiting for it: forget the request.
        const reply = await withDeadline(name, timeoutMs, ask(user, id)).finally(() => connection?.pending.delete(id));
        if (reply.kind === "notfound") return { kind: "unknown" };
        if (reply.kind === "fail") {
          return { kind: "tempfail", cause: new DirectoryError("RECIPIENTS_LOOKUP_FAILED", name, reply.reason) };
        }
        const mailbox = reply.name.includes("@") ? reply.name : `${reply.name}@${address.domain}`;
        return { kind: "mailbox", mailbox: lookupAddress(mailbox)?.address ?? address.address };
      } catch (error) {
        return { kind: "tempfail", cause: DirectoryError.from(name, error) };
      }
    },
    async close() {
      connection?.socket.destroy();
      connection = undefined;
    },
  };
}
