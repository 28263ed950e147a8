// What "nothing malformed is stored" means here: RFC 5322 §2.1 / §2.1.1 — lines end with CRLF
// (no bare CR, no bare LF) and no line is longer than 998 octets without its CRLF.

/** Why `bytes` is not a well-formed stored message, or undefined when it is. */
export function malformation(bytes: Buffer, maxLineLength = 998): string | undefined {
  let lineStart = 0;
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index];
    if (byte === 0x0d) {
      if (bytes[index + 1] !== 0x0a) return `bare CR at offset ${index}`;
      if (index - lineStart > maxLineLength) return `line of ${index - lineStart} octets at offset ${lineStart}`;
      index++;
      lineStart = index + 1;
    } else if (byte === 0x0a) {
      return `bare LF at offset ${index}`;
    }
  }
  if (lineStart !== bytes.length) return "the last line does not end with CRLF";
  return undefined;
}
