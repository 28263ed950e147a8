// One milter's conversation for one SMTP session: option negotiation, then one command per SMTP
// stage (each preceded by its macros), the message content at DATA, and the modification requests
// the milter sends before its final reply at end of message. It knows the protocol's rules about
// which steps the milter skipped or will not answer; what a reply means for the SMTP client is
// decided by the caller (verdicts.ts).
import { actionOf, type MilterAction } from "./actions.ts";
import { MilterError } from "./errors.ts";
import { messageParts } from "./message-parts.ts";
import { type MilterAddress, MilterConnection } from "./protocol/connection.ts";
import {
  ActionFlag,
  defaultChunkSize,
  MacroStage,
  type MacroStageName,
  offeredProtocolFlags,
  ProtocolFlag,
  protocolVersion,
} from "./protocol/constants.ts";
import type { MilterReply } from "./protocol/packets.ts";
import * as packets from "./protocol/packets.ts";
import { ReplacementBody } from "./replacement-body.ts";

export interface MilterTimeouts {
  /** Connecting and option negotiation. */
  connectMs: number;
  /** Waiting for the reply to one envelope command (connect info, HELO, MAIL, RCPT). */
  commandMs: number;
  /** The whole message: DATA, headers, body and the end-of-message reply with its changes. */
  contentMs: number;
}

export interface MilterSpec {
  name: string;
  address: MilterAddress;
  timeouts: MilterTimeouts;
  /** SMFIF_* flags offered to the milter. */
  actions: number;
}

/** A milter's answer to one stage, before it is turned into an SMTP verdict. */
export type StageReply =
  | { kind: "continue" }
  /** No more commands for this message (or, at connect/HELO, this connection). */
  | { kind: "accept" }
  | { kind: "reject" }
  | { kind: "tempfail" }
  | { kind: "discard" }
  | { kind: "replyCode"; code: number; text: string }
  /** SMFIR_CONN_FAIL / SMFIR_SHUTDOWN: the milter wants the SMTP connection closed. */
  | { kind: "disconnect" };

export interface MessageOutcome {
  reply: StageReply;
  /** The changes requested before the final reply (only when it was continue or accept). */
  actions: MilterAction[];
}

type Negotiated = { actions: number; protocol: number; chunkSize: number; symbolLists: Map<number, Set<string>> };

const stageOfReply: Record<string, StageReply["kind"] | undefined> = {
  continue: "continue",
  accept: "accept",
  reject: "reject",
  tempfail: "tempfail",
  discard: "discard",
  connectionFailure: "disconnect",
  shutdown: "disconnect",
};

function toStageReply(reply: MilterReply, stage: string): StageReply {
  if (reply.type === "replyCode") return { kind: "replyCode", code: reply.code, text: reply.text };
  const kind = stageOfReply[reply.type];
  if (!kind) {
    throw new MilterError("POSTERN_MILTER_PROTOCOL", `the milter answered ${reply.type} to ${stage}`);
  }
  return { kind } as StageReply;
}

const modificationFlag: Partial<Record<MilterReply["type"], number>> = {
  addHeader: ActionFlag.addHeaders,
  insertHeader: ActionFlag.addHeaders,
  changeHeader: ActionFlag.changeHeaders,
  replaceBody: ActionFlag.changeBody,
  addRecipient: ActionFlag.addRecipients | ActionFlag.addRecipientsWithParameters,
  deleteRecipient: ActionFlag.deleteRecipients,
  quarantine: ActionFlag.quarantine,
  changeFrom: ActionFlag.changeFrom,
};

export class MilterSession {
  readonly spec: MilterSpec;
  readonly #spoolDir: string;
  #connection: MilterConnection | undefined;
  #negotiated: Negotiated | undefined;
  /** A message is under way at the milter (MAIL was sent, end of message not yet answered). */
  #inMessage = false;

  constructor(spec: MilterSpec, spoolDir: string) {
    this.spec = spec;
    this.#spoolDir = spoolDir;
  }

  /** Connects and negotiates; returns the milter's reply to the connection information. */
  async open(
    client: { hostname: string; family: packets.AddressFamily; port: number; address: string },
    macros: ReadonlyMap<string, string>,
  ): Promise<StageReply> {
    const deadline = Date.now() + this.spec.timeouts.connectMs;
    const connection = await MilterConnection.open(this.spec.address, deadline);
    this.#connection = connection;
    await connection.write(
      packets.optionNegotiation(protocolVersion, this.spec.actions, offeredProtocolFlags),
      deadline,
    );
    const reply = await connection.read(deadline);
    if (reply.type !== "optionNegotiation") {
      throw new MilterError("POSTERN_MILTER_NEGOTIATION", `the milter answered ${reply.type} to option negotiation`);
    }
    this.#negotiated = this.#settle(reply);
    return this.#command("connect", packets.connect(client.hostname, client.family, client.port, client.address), {
      skip: ProtocolFlag.noConnect,
      noReply: ProtocolFlag.noReplyConnect,
      macros,
    });
  }

  /** What the milter asked for, checked against what was offered. */
  #settle(reply: Extract<MilterReply, { type: "optionNegotiation" }>): Negotiated {
    if (reply.version < 2 || reply.version > protocolVersion) {
      throw new MilterError("POSTERN_MILTER_NEGOTIATION", `the milter speaks protocol version ${reply.version}`);
    }
    const unoffered = reply.protocol & ~offeredProtocolFlags;
    if (unoffered !== 0) {
      throw new MilterError(
        "POSTERN_MILTER_NEGOTIATION",
        `the milter asked for protocol steps 0x${unoffered.toString(16)} this client does not offer`,
      );
    }
    const chunkSize =
      reply.protocol & ProtocolFlag.maxDataSize1M
        ? 1024 * 1024 - 1
        : reply.protocol & ProtocolFlag.maxDataSize256K
          ? 256 * 1024 - 1
          : defaultChunkSize;
    const symbolLists = new Map<number, Set<string>>();
    if (reply.actions & ActionFlag.setSymbolList & this.spec.actions) {
      for (const list of reply.symbolLists) symbolLists.set(list.stage, new Set(list.macros));
    }
    // A milter asking for more than was offered gets what was offered (as Postfix does); a change
    // outside that set later is a protocol error.
    return { actions: reply.actions & this.spec.actions, protocol: reply.protocol, chunkSize, symbolLists };
  }

  get negotiatedActions(): number {
    return this.#negotiated?.actions ?? 0;
  }

  get inMessage(): boolean {
    return this.#inMessage;
  }

  async helo(name: string, macros: ReadonlyMap<string, string>): Promise<StageReply> {
    if (this.#inMessage) await this.abort();
    return this.#command("helo", packets.helo(name), {
      skip: ProtocolFlag.noHelo,
      noReply: ProtocolFlag.noReplyHelo,
      macros,
    });
  }

  async mail(address: string, parameters: string[], macros: ReadonlyMap<string, string>): Promise<StageReply> {
    if (this.#inMessage) await this.abort();
    // Until end of message is answered, the milter has a message open: anything that ends the
    // SMTP transaction earlier (a refusal, RSET, a new MAIL, QUIT) is followed by SMFIC_ABORT.
    this.#inMessage = true;
    return this.#command("mail", packets.mail(address, parameters), {
      skip: ProtocolFlag.noMail,
      noReply: ProtocolFlag.noReplyMail,
      macros,
    });
  }

  async rcpt(address: string, parameters: string[], macros: ReadonlyMap<string, string>): Promise<StageReply> {
    return this.#command("rcpt", packets.rcpt(address, parameters), {
      skip: ProtocolFlag.noRcpt,
      noReply: ProtocolFlag.noReplyRcpt,
      macros,
    });
  }

  /**
   * Sends the message (DATA, header fields, end of headers, body chunks, end of body) and returns
   * the final reply with the changes asked for before it. A reject/tempfail/discard/accept before
   * end of message ends the exchange there.
   */
  async message(
    source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
    macros: {
      data: ReadonlyMap<string, string>;
      endOfHeaders: ReadonlyMap<string, string>;
      endOfMessage: ReadonlyMap<string, string>;
    },
  ): Promise<MessageOutcome> {
    const negotiated = this.#requireNegotiated();
    const deadline = Date.now() + this.spec.timeouts.contentMs;
    const protocol = negotiated.protocol;
    const done = (reply: StageReply): MessageOutcome => ({ reply, actions: [] });
    let reply = await this.#command("data", packets.data(), {
      skip: ProtocolFlag.noData,
      noReply: ProtocolFlag.noReplyData,
      macros: macros.data,
      deadline,
    });
    if (reply.kind !== "continue") return done(reply);
    let skipBody = (protocol & ProtocolFlag.noBody) !== 0;
    const parts = messageParts(source, {
      chunkSize: negotiated.chunkSize,
      leadingSpace: (protocol & ProtocolFlag.headerLeadingSpace) !== 0,
    });
    for await (const part of parts) {
      if (part.kind === "header") {
        if (protocol & ProtocolFlag.noHeaders) continue;
        reply = await this.#command("header", packets.header(part.name, part.value), {
          skip: 0,
          noReply: ProtocolFlag.noReplyHeader,
          deadline,
        });
      } else if (part.kind === "endOfHeaders") {
        reply = await this.#command("end of headers", packets.endOfHeaders(), {
          skip: ProtocolFlag.noEndOfHeaders,
          noReply: ProtocolFlag.noReplyEndOfHeaders,
          macros: macros.endOfHeaders,
          deadline,
        });
      } else {
        if (skipBody) continue;
        const answer = await this.#command("body", packets.body(part.chunk), {
          skip: 0,
          noReply: ProtocolFlag.noReplyBody,
          deadline,
          allowSkip: true,
        });
        if (answer === "skip") {
          skipBody = true;
          continue;
        }
        reply = answer;
      }
      if (reply.kind !== "continue") {
        // The rest of the message is not needed; stop reading it.
        await parts.return(undefined);
        return done(reply);
      }
    }
    return this.#endOfMessage(macros.endOfMessage, deadline);
  }

  async #endOfMessage(macros: ReadonlyMap<string, string>, deadline: number): Promise<MessageOutcome> {
    const connection = this.#requireConnection();
    await this.#sendMacros("endOfMessage", macros, deadline);
    await connection.write(packets.endOfBody(), deadline);
    const actions: MilterAction[] = [];
    let body: ReplacementBody | undefined;
    try {
      for (;;) {
        const reply = await connection.read(deadline);
        const flag = modificationFlag[reply.type];
        if (flag !== undefined) {
          if ((flag & this.negotiatedActions) === 0) {
            throw new MilterError(
              "POSTERN_MILTER_PROTOCOL",
              `the milter sent ${reply.type} without having negotiated that action`,
            );
          }
          if (reply.type === "replaceBody") {
            if (!body) {
              body = new ReplacementBody(this.#spoolDir);
              actions.push({ kind: "replaceBody", body });
            }
            await body.append(reply.chunk);
            continue;
          }
          const action = actionOf(reply, (this.#negotiated!.protocol & ProtocolFlag.headerLeadingSpace) !== 0);
          if (action) actions.push(action);
          continue;
        }
        const final = toStageReply(reply, "end of message");
        this.#inMessage = false;
        await body?.finish();
        if (final.kind === "continue" || final.kind === "accept") return { reply: final, actions };
        await body?.discard();
        return { reply: final, actions: [] };
      }
    } catch (error) {
      await body?.discard();
      throw error;
    }
  }

  /** Ends the message under way at the milter (the client sent RSET, or a new MAIL, or left). */
  async abort(): Promise<void> {
    if (!this.#connection || this.#connection.failed) return;
    this.#inMessage = false;
    await this.#connection.write(packets.abort(), Date.now() + this.spec.timeouts.commandMs);
  }

  /** Says goodbye and closes; never waits for the milter. */
  quit(): void {
    this.#connection?.end(packets.quit());
    this.#connection = undefined;
  }

  /** Gives up on the milter: the socket is closed without a word. */
  close(): void {
    this.#connection?.close();
    this.#connection = undefined;
  }

  async #sendMacros(stage: MacroStageName, macros: ReadonlyMap<string, string>, deadline: number): Promise<void> {
    const negotiated = this.#requireNegotiated();
    const wanted = negotiated.symbolLists.get(MacroStage[stage]);
    const values = wanted ? new Map([...macros].filter(([name]) => wanted.has(name))) : macros;
    if (values.size === 0) return;
    await this.#requireConnection().write(packets.macros(stage, values), deadline);
  }

  async #command(
    stage: "connect" | "helo" | "mail" | "rcpt" | "data" | "header" | "end of headers",
    bytes: Buffer,
    options: { skip: number; noReply: number; macros?: ReadonlyMap<string, string>; deadline?: number },
  ): Promise<StageReply>;
  async #command(
    stage: "body",
    bytes: Buffer,
    options: { skip: number; noReply: number; deadline: number; allowSkip: true },
  ): Promise<StageReply | "skip">;
  async #command(
    stage: string,
    bytes: Buffer,
    options: {
      skip: number;
      noReply: number;
      macros?: ReadonlyMap<string, string>;
      deadline?: number;
      allowSkip?: boolean;
    },
  ): Promise<StageReply | "skip"> {
    const negotiated = this.#requireNegotiated();
    const connection = this.#requireConnection();
    if (negotiated.protocol & options.skip) return { kind: "continue" };
    const deadline = options.deadline ?? Date.now() + this.spec.timeouts.commandMs;
    const macroStage = macroStageOf[stage];
    if (options.macros && macroStage) await this.#sendMacros(macroStage, options.macros, deadline);
    await connection.write(bytes, deadline);
    if (negotiated.protocol & options.noReply) return { kind: "continue" };
    const reply = await connection.read(deadline);
    if (reply.type === "skip") {
      if (options.allowSkip) return "skip";
      throw new MilterError("POSTERN_MILTER_PROTOCOL", `the milter answered skip to ${stage}`);
    }
    return toStageReply(reply, stage);
  }

  #requireConnection(): MilterConnection {
    if (!this.#connection) throw new MilterError("POSTERN_MILTER_CLOSED", "the milter connection is closed");
    return this.#connection;
  }

  #requireNegotiated(): Negotiated {
    if (!this.#negotiated) throw new MilterError("POSTERN_MILTER_PROTOCOL", "option negotiation has not happened");
    return this.#negotiated;
  }
}

const macroStageOf: Record<string, MacroStageName | undefined> = {
  connect: "connect",
  helo: "helo",
  mail: "mail",
  rcpt: "rcpt",
  data: "data",
  "end of headers": "endOfHeaders",
};
