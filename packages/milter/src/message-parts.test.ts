// How a stored message is cut into milter packets: header fields (folding kept, the leading space
// as negotiated), then the body in chunks of at most the negotiated size, whatever pieces the
// message stream arrives in.
import { describe, expect, it } from "vitest";
import { type MessagePart, messageParts } from "./message-parts.ts";

async function partsOf(pieces: string[], options = { chunkSize: 8, leadingSpace: false }) {
  const parts: MessagePart[] = [];
  for await (const part of messageParts(
    pieces.map((piece) => Buffer.from(piece, "latin1")),
    options,
  )) {
    parts.push(part);
  }
  return parts.map((part) =>
    part.kind === "header"
      ? `${part.name}=${part.value.toString("latin1")}`
      : part.kind === "body"
        ? `body:${part.chunk.toString("latin1")}`
        : "eoh",
  );
}

describe("messageParts", () => {
  const message = "Subject:  two\r\n\tlines\r\nX-Empty:\r\nFrom: <a@example.org>\r\n\r\nline one\r\nline two\r\n";

  it("sends folded values as they are, without the separating space unless the leading space was negotiated", async () => {
    expect(await partsOf([message])).toEqual([
      "Subject= two\r\n\tlines",
      "X-Empty=",
      "From=<a@example.org>",
      "eoh",
      "body:line one",
      "body:\r\nline t",
      "body:wo\r\n",
    ]);
    const withSpace = await partsOf([message], { chunkSize: 64, leadingSpace: true });
    expect(withSpace.slice(0, 3)).toEqual(["Subject=  two\r\n\tlines", "X-Empty=", "From= <a@example.org>"]);
  });

  it("gives the same packets whatever pieces the stream arrives in", async () => {
    const whole = await partsOf([message]);
    const bytewise = await partsOf(message.split(""));
    expect(bytewise).toEqual(whole);
  });

  it("handles a message without a body, and one without an empty line", async () => {
    expect(await partsOf(["Subject: x\r\n\r\n"])).toEqual(["Subject=x", "eoh"]);
    expect(await partsOf(["Subject: x\r\n"])).toEqual(["Subject=x", "eoh"]);
  });

  it("skips lines of the header block that are not fields", async () => {
    expect(await partsOf(["From someone Tue\r\nSubject: x\r\n\r\nb"])).toEqual(["Subject=x", "eoh", "body:b"]);
  });
});
