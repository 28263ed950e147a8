// Every packet of the milter protocol byte by byte: what the MTA sends (encoders) and what a milter
// sends back (decoder), with the framing that reassembles packets from arbitrary TCP pieces.
import { describe, expect, it } from "vitest";
import { ActionFlag, offeredProtocolFlags, ProtocolFlag } from "./constants.ts";
import { maxPacketLength, PacketReader } from "./packet-reader.ts";
import * as packets from "./packets.ts";

const hex = (bytes: Buffer) => bytes.toString("hex");
/** A packet written out by hand: length (4 bytes, big-endian), command, data. */
function expected(command: string, ...data: (string | number[])[]): string {
  const body = Buffer.concat(
    data.map((part) => (typeof part === "string" ? Buffer.from(part, "latin1") : Buffer.from(part))),
  );
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length + 1, 0);
  return hex(Buffer.concat([length, Buffer.from(command, "latin1"), body]));
}

describe("what the MTA sends", () => {
  it("SMFIC_OPTNEG: version, actions, protocol as three 32-bit words", () => {
    expect(hex(packets.optionNegotiation(6, 0x1ff, 0x1fffff))).toBe(
      "0000000d4f" + "00000006" + "000001ff" + "001fffff",
    );
  });

  it("SMFIC_CONNECT: host name, family, port (16 bits) and address, for IPv4, IPv6 and unknown", () => {
    expect(hex(packets.connect("mail.example.org", "inet", 25, "192.0.2.1"))).toBe(
      expected("C", "mail.example.org\0", "4", [0x00, 0x19], "192.0.2.1\0"),
    );
    expect(hex(packets.connect("[2001:db8::1]", "inet6", 50_000, "2001:db8::1"))).toBe(
      expected("C", "[2001:db8::1]\0", "6", [0xc3, 0x50], "2001:db8::1\0"),
    );
    expect(hex(packets.connect("localhost", "unknown", 0, ""))).toBe(expected("C", "localhost\0", "U"));
  });

  it("SMFIC_MACRO: the command the macros precede, then name/value pairs", () => {
    const macros = new Map([
      ["i", "QUEUEID1"],
      ["{auth_authen}", "alice"],
    ]);
    expect(hex(packets.macros("mail", macros))).toBe(expected("D", "M", "i\0QUEUEID1\0{auth_authen}\0alice\0"));
    expect(hex(packets.macros("connect", new Map([["j", "mx.test"]])))).toBe(expected("D", "C", "j\0mx.test\0"));
    expect(hex(packets.macros("endOfHeaders", new Map([["i", "Q"]])))).toBe(expected("D", "N", "i\0Q\0"));
    expect(hex(packets.macros("endOfMessage", new Map([["i", "Q"]])))).toBe(expected("D", "E", "i\0Q\0"));
    expect(hex(packets.macros("data", new Map([["i", "Q"]])))).toBe(expected("D", "T", "i\0Q\0"));
  });

  it("SMFIC_HELO, SMFIC_MAIL and SMFIC_RCPT with ESMTP parameters", () => {
    expect(hex(packets.helo("client.example"))).toBe(expected("H", "client.example\0"));
    expect(hex(packets.mail("alice@example.org", ["SIZE=1024", "BODY=8BITMIME"]))).toBe(
      expected("M", "<alice@example.org>\0SIZE=1024\0BODY=8BITMIME\0"),
    );
    expect(hex(packets.mail(""))).toBe(expected("M", "<>\0"));
    expect(hex(packets.rcpt("bob@example.net", ["NOTIFY=NEVER"]))).toBe(
      expected("R", "<bob@example.net>\0NOTIFY=NEVER\0"),
    );
  });

  it("SMFIC_DATA, SMFIC_HEADER, SMFIC_EOH, SMFIC_BODY, SMFIC_BODYEOB, SMFIC_ABORT, SMFIC_QUIT", () => {
    expect(hex(packets.data())).toBe("0000000154");
    expect(hex(packets.header("Subject", Buffer.from("hello\r\n\tworld")))).toBe(
      expected("L", "Subject\0hello\r\n\tworld\0"),
    );
    expect(hex(packets.endOfHeaders())).toBe("000000014e");
    expect(hex(packets.body(Buffer.from("line\r\n")))).toBe(expected("B", "line\r\n"));
    expect(hex(packets.endOfBody())).toBe("0000000145");
    expect(hex(packets.abort())).toBe("0000000141");
    expect(hex(packets.quit())).toBe("0000000151");
  });

  it("offers every step it can skip or not wait for, and no flag it cannot honour", () => {
    expect(offeredProtocolFlags & ProtocolFlag.rejectedRecipients).toBe(0);
    expect(offeredProtocolFlags & ProtocolFlag.skip).toBe(ProtocolFlag.skip);
    expect(offeredProtocolFlags & ProtocolFlag.headerLeadingSpace).toBe(ProtocolFlag.headerLeadingSpace);
    expect(offeredProtocolFlags.toString(16)).toBe("301ff7ff");
  });
});

describe("what a milter sends", () => {
  const decode = (command: string, ...data: (string | number[])[]) => {
    const raw = Buffer.from(expected(command, ...data), "hex");
    const [parsed] = new PacketReader().push(raw);
    return packets.decodeReply(parsed!.command, parsed!.data);
  };

  it("SMFIR_OPTNEG with symbol lists per stage", () => {
    expect(
      decode(
        "O",
        [0, 0, 0, 6, 0, 0, 1, 0x11, 0, 0x10, 1, 0x40],
        [0, 0, 0, 2],
        "{auth_authen} i\0",
        [0, 0, 0, 5],
        "i\0",
      ),
    ).toEqual({
      type: "optionNegotiation",
      version: 6,
      actions: ActionFlag.setSymbolList | ActionFlag.changeHeaders | ActionFlag.addHeaders,
      protocol: ProtocolFlag.headerLeadingSpace | ProtocolFlag.noUnknown | ProtocolFlag.noEndOfHeaders,
      symbolLists: [
        { stage: 2, macros: ["{auth_authen}", "i"] },
        { stage: 5, macros: ["i"] },
      ],
    });
  });

  it.each([
    ["c", "continue"],
    ["a", "accept"],
    ["r", "reject"],
    ["t", "tempfail"],
    ["d", "discard"],
    ["s", "skip"],
    ["p", "progress"],
    ["f", "connectionFailure"],
    ["4", "shutdown"],
  ])("SMFIR %s is %s", (command, type) => {
    expect(decode(command)).toEqual({ type });
  });

  it("SMFIR_REPLYCODE: the code and the rest of the line, NUL removed", () => {
    expect(decode("y", "550 5.7.1 Virus found\0")).toEqual({ type: "replyCode", code: 550, text: "5.7.1 Virus found" });
    expect(decode("y", "451 4.7.1 First\r\n451 4.7.1 Second\0")).toEqual({
      type: "replyCode",
      code: 451,
      text: "4.7.1 First\r\n451 4.7.1 Second",
    });
    expect(() => decode("y", "Virus found\0")).toThrow(/without an SMTP code/);
  });

  it("SMFIR_ADDHEADER, SMFIR_INSHEADER and SMFIR_CHGHEADER (an empty value removes)", () => {
    expect(decode("h", "X-Spam\0yes\0")).toEqual({ type: "addHeader", name: "X-Spam", value: "yes" });
    expect(decode("i", [0, 0, 0, 0], "DKIM-Signature\0 v=1;\n\tb=abc\0")).toEqual({
      type: "insertHeader",
      index: 0,
      name: "DKIM-Signature",
      value: " v=1;\n\tb=abc",
    });
    expect(decode("m", [0, 0, 0, 2], "Received\0\0")).toEqual({
      type: "changeHeader",
      index: 2,
      name: "Received",
      value: "",
    });
  });

  it("SMFIR_REPLBODY keeps its bytes as they are", () => {
    expect(decode("b", [0, 1, 2, 0xff])).toEqual({ type: "replaceBody", chunk: Buffer.from([0, 1, 2, 0xff]) });
  });

  it("SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR, SMFIR_DELRCPT, SMFIR_CHGFROM: addresses without angle brackets", () => {
    expect(decode("+", "<new@example.net>\0")).toEqual({
      type: "addRecipient",
      address: "new@example.net",
      parameters: undefined,
    });
    expect(decode("2", "<new@example.net>\0NOTIFY=NEVER\0")).toEqual({
      type: "addRecipient",
      address: "new@example.net",
      parameters: "NOTIFY=NEVER",
    });
    expect(decode("-", "<old@example.net>\0")).toEqual({ type: "deleteRecipient", address: "old@example.net" });
    expect(decode("e", "<bounce@example.org>\0")).toEqual({
      type: "changeFrom",
      address: "bounce@example.org",
      parameters: undefined,
    });
  });

  it("SMFIR_QUARANTINE and SMFIR_SETSYMLIST", () => {
    expect(decode("q", "held for review\0")).toEqual({ type: "quarantine", reason: "held for review" });
    expect(decode("l", [0, 0, 0, 0], "j {daemon_name}\0")).toEqual({
      type: "setSymbolList",
      stage: 0,
      macros: ["j", "{daemon_name}"],
    });
  });

  it("refuses what is not a reply, and an option negotiation that is too short", () => {
    expect(() => decode("Z")).toThrow(/unknown reply "Z"/);
    expect(() => decode("O", [0, 0, 0, 6])).toThrow(/option negotiation packet is too short/);
    expect(() => decode("i", [0, 0])).toThrow(/insert header packet is too short/);
  });
});

describe("framing", () => {
  const two = Buffer.concat([Buffer.from(expected("c"), "hex"), Buffer.from(expected("h", "X-A\0b\0"), "hex")]);

  it("reassembles packets fed one byte at a time", () => {
    const reader = new PacketReader();
    const seen: string[] = [];
    for (const byte of two) for (const packet of reader.push(Buffer.from([byte]))) seen.push(packet.command);
    expect(seen).toEqual(["c", "h"]);
    expect(reader.buffered).toBe(0);
  });

  it("splits several packets arriving in one piece, and keeps an unfinished one", () => {
    const reader = new PacketReader();
    const packetsSeen = reader.push(Buffer.concat([two, Buffer.from([0, 0, 0, 9, 0x68])]));
    expect(packetsSeen.map((packet) => packet.command)).toEqual(["c", "h"]);
    expect(packetsSeen[1]!.data.toString("latin1")).toBe("X-A\0b\0");
    expect(reader.buffered).toBe(5);
  });

  it("refuses a length of zero and lengths over the limit", () => {
    expect(() => new PacketReader().push(Buffer.from([0, 0, 0, 0]))).toThrow(/length 0/);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(maxPacketLength + 1, 0);
    expect(() => new PacketReader().push(huge)).toThrow(/over the limit/);
  });
});
