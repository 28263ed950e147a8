// Milter packets as bytes: a 32-bit big-endian length (command byte included), the command byte,
// then the command's data. Strings are NUL-terminated. Encoders build what the MTA sends; the
// decoder turns one of the milter's packets into a typed reply.

import { PosternError } from "@postern/core";
import { Command, type CommandCode, type MacroStageName, macroStageCommand, Reply } from "./constants.ts";

/** One packet: length, command, data. */
export function packet(command: CommandCode, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1, 0);
  head.write(command, 4, "latin1");
  return Buffer.concat([head, data]);
}

/** NUL-terminated strings, as the protocol writes them (UTF-8; SMTPUTF8 addresses pass as is). */
function strings(...values: readonly string[]): Buffer {
  return Buffer.concat(values.flatMap((value) => [Buffer.from(value, "utf8"), Buffer.alloc(1)]));
}

function uint32s(...values: readonly number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (const [index, value] of values.entries()) out.writeUInt32BE(value >>> 0, index * 4);
  return out;
}

export function optionNegotiation(version: number, actions: number, protocol: number): Buffer {
  return packet(Command.optionNegotiation, uint32s(version, actions, protocol));
}

export type AddressFamily = "inet" | "inet6" | "unix" | "unknown";
const familyCode: Record<AddressFamily, string> = { inet: "4", inet6: "6", unix: "L", unknown: "U" };

/** SMFIC_CONNECT: client host name, address family, port, address. */
export function connect(hostname: string, family: AddressFamily, port: number, address: string): Buffer {
  if (family === "unknown") return packet(Command.connect, Buffer.concat([strings(hostname), Buffer.from("U")]));
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port, 0);
  return packet(
    Command.connect,
    Buffer.concat([strings(hostname), Buffer.from(familyCode[family], "latin1"), portBytes, strings(address)]),
  );
}

/** SMFIC_MACRO: the macros defined for the command that follows. */
export function macros(stage: MacroStageName, values: ReadonlyMap<string, string>): Buffer {
  const command = Buffer.from(macroStageCommand[stage], "latin1");
  return packet(Command.macro, Buffer.concat([command, strings(...[...values].flat())]));
}

export function helo(name: string): Buffer {
  return packet(Command.helo, strings(name));
}

/** SMFIC_MAIL / SMFIC_RCPT: the address in angle brackets, then each ESMTP parameter. */
export function mail(address: string, parameters: readonly string[] = []): Buffer {
  return packet(Command.mail, strings(`<${address}>`, ...parameters));
}

export function rcpt(address: string, parameters: readonly string[] = []): Buffer {
  return packet(Command.rcpt, strings(`<${address}>`, ...parameters));
}

export function data(): Buffer {
  return packet(Command.data);
}

/** SMFIC_HEADER: name and value; the value as the milter asked for it (leading space or not). */
export function header(name: string, value: Buffer): Buffer {
  return packet(Command.header, Buffer.concat([Buffer.from(name, "latin1"), Buffer.alloc(1), value, Buffer.alloc(1)]));
}

export function endOfHeaders(): Buffer {
  return packet(Command.endOfHeaders);
}

export function body(chunk: Buffer): Buffer {
  return packet(Command.body, chunk);
}

export function endOfBody(): Buffer {
  return packet(Command.endOfBody);
}

export function abort(): Buffer {
  return packet(Command.abort);
}

export function quit(): Buffer {
  return packet(Command.quit);
}

/** What a milter can send, decoded (strings as UTF-8, what core writes header fields in). */
export type MilterReply =
  | { type: "optionNegotiation"; version: number; actions: number; protocol: number; symbolLists: SymbolList[] }
  | { type: "continue" }
  | { type: "accept" }
  | { type: "reject" }
  | { type: "tempfail" }
  | { type: "discard" }
  | { type: "skip" }
  | { type: "progress" }
  | { type: "connectionFailure" }
  | { type: "shutdown" }
  | { type: "replyCode"; code: number; text: string }
  | { type: "addHeader"; name: string; value: string }
  | { type: "insertHeader"; index: number; name: string; value: string }
  | { type: "changeHeader"; index: number; name: string; value: string }
  | { type: "replaceBody"; chunk: Buffer }
  | { type: "addRecipient"; address: string; parameters: string | undefined }
  | { type: "deleteRecipient"; address: string }
  | { type: "changeFrom"; address: string; parameters: string | undefined }
  | { type: "quarantine"; reason: string }
  | { type: "setSymbolList"; stage: number; macros: string[] };

export interface SymbolList {
  stage: number;
  macros: string[];
}

export class MilterProtocolError extends PosternError {
  constructor(message: string) {
    super("MILTER_PROTOCOL", message, { plugin: "@postern/milter" });
  }
}

/** The NUL-terminated strings of `data` (a final string without NUL is tolerated). */
function splitStrings(data: Buffer): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let index = 0; index < data.length; index++) {
    if (data[index] !== 0) continue;
    parts.push(data.subarray(start, index).toString("utf8"));
    start = index + 1;
  }
  if (start < data.length) parts.push(data.subarray(start).toString("utf8"));
  return parts;
}

function requireLength(data: Buffer, length: number, what: string): void {
  if (data.length < length) throw new MilterProtocolError(`${what} packet is too short (${data.length} bytes)`);
}

/** Macro names as the MTA sends them: one letter bare, longer names in braces. */
export function normaliseMacroName(name: string): string {
  const bare = name.replace(/^\{(.*)\}$/, "$1");
  return bare.length === 1 ? bare : `{${bare}}`;
}

function symbolLists(data: Buffer): SymbolList[] {
  const lists: SymbolList[] = [];
  let offset = 0;
  while (offset + 4 <= data.length) {
    const stage = data.readUInt32BE(offset);
    const end = data.indexOf(0, offset + 4);
    const text = data.subarray(offset + 4, end === -1 ? data.length : end).toString("latin1");
    lists.push({
      stage,
      macros: text
        .split(/[\s,]+/)
        .filter(Boolean)
        .map(normaliseMacroName),
    });
    offset = end === -1 ? data.length : end + 1;
  }
  return lists;
}

/** Decodes one milter packet (command byte + data). */
export function decodeReply(command: string, data: Buffer): MilterReply {
  switch (command) {
    case Reply.optionNegotiation: {
      requireLength(data, 12, "option negotiation");
      return {
        type: "optionNegotiation",
        version: data.readUInt32BE(0),
        actions: data.readUInt32BE(4),
        protocol: data.readUInt32BE(8),
        symbolLists: symbolLists(data.subarray(12)),
      };
    }
    case Reply.continue:
      return { type: "continue" };
    case Reply.accept:
      return { type: "accept" };
    case Reply.reject:
      return { type: "reject" };
    case Reply.tempfail:
      return { type: "tempfail" };
    case Reply.discard:
      return { type: "discard" };
    case Reply.skip:
      return { type: "skip" };
    case Reply.progress:
      return { type: "progress" };
    case Reply.connectionFailure:
      return { type: "connectionFailure" };
    case Reply.shutdown:
      return { type: "shutdown" };
    case Reply.replyCode: {
      const [line = ""] = splitStrings(data);
      const match = /^([245]\d\d)(?:[ -](.*))?$/s.exec(line);
      if (!match) throw new MilterProtocolError(`reply code packet without an SMTP code: ${JSON.stringify(line)}`);
      return { type: "replyCode", code: Number(match[1]), text: match[2] ?? "" };
    }
    case Reply.addHeader: {
      const [name = "", value = ""] = splitStrings(data);
      return { type: "addHeader", name, value };
    }
    case Reply.insertHeader:
    case Reply.changeHeader: {
      requireLength(data, 4, command === Reply.insertHeader ? "insert header" : "change header");
      const index = data.readUInt32BE(0);
      const [name = "", value = ""] = splitStrings(data.subarray(4));
      return { type: command === Reply.insertHeader ? "insertHeader" : "changeHeader", index, name, value };
    }
    case Reply.replaceBody:
      return { type: "replaceBody", chunk: data };
    case Reply.addRecipient:
    case Reply.addRecipientWithParameters: {
      const [address = "", parameters] = splitStrings(data);
      return { type: "addRecipient", address: unbracket(address), parameters: parameters || undefined };
    }
    case Reply.deleteRecipient: {
      const [address = ""] = splitStrings(data);
      return { type: "deleteRecipient", address: unbracket(address) };
    }
    case Reply.changeFrom: {
      const [address = "", parameters] = splitStrings(data);
      return { type: "changeFrom", address: unbracket(address), parameters: parameters || undefined };
    }
    case Reply.quarantine: {
      const [reason = ""] = splitStrings(data);
      return { type: "quarantine", reason };
    }
    case Reply.setSymbolList: {
      const [list] = symbolLists(data);
      if (!list) throw new MilterProtocolError("symbol list packet is too short");
      return { type: "setSymbolList", stage: list.stage, macros: list.macros };
    }
    default:
      throw new MilterProtocolError(
        `unknown reply ${JSON.stringify(command)} (0x${command.charCodeAt(0).toString(16)})`,
      );
  }
}

function unbracket(address: string): string {
  const trimmed = address.trim();
  return trimmed.startsWith("<") && trimmed.endsWith(">") ? trimmed.slice(1, -1) : trimmed;
}
