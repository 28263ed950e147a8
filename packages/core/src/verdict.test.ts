import { describe, expect, it } from "vitest";
import { replyFor } from "./reply.ts";
import { accept, defer, disconnect, reject } from "./verdict.ts";

describe("verdict helpers", () => {
  it("derive the basic code from the enhanced status", () => {
    expect(reject("5.7.1", "no").code).toBe(550);
    expect(reject("5.1.1", "no such user").code).toBe(550);
    expect(reject("5.3.4", "too big").code).toBe(552);
    expect(reject("5.7.8", "bad credentials").code).toBe(535);
    expect(defer("4.3.0", "later").code).toBe(451);
    expect(defer("4.5.3", "too many recipients").code).toBe(452);
    expect(defer("4.7.0", "go away").code).toBe(421);
    expect(disconnect("4.7.0", "bye").code).toBe(421);
    expect(disconnect("5.7.1", "bye").code).toBe(554);
  });

  it("keep an explicit basic code and refuse one of the wrong class", () => {
    expect(reject("5.7.1", "no", 554).code).toBe(554);
    expect(() => reject("5.7.1", "no", 451)).toThrow(/does not match/);
  });

  it("refuse a status of the wrong class or shape", () => {
    expect(() => reject("4.7.1", "no")).toThrow(/not a 5\.x\.x/);
    expect(() => defer("5.7.1", "no")).toThrow(/not a 4\.x\.x/);
    expect(() => reject("5.7" as never, "no")).toThrow();
  });

  it("keep reply text on one line", () => {
    expect(reject("5.7.1", "line\r\nMAIL FROM:<x@y>").text).toBe("line MAIL FROM:<x@y>");
  });

  it("map to one SMTP reply each", () => {
    expect(replyFor(reject("5.7.1", "Relaying denied"))).toEqual({
      code: 550,
      message: "5.7.1 Relaying denied",
      close: false,
    });
    expect(replyFor(disconnect("4.7.0", "Too many connections")).close).toBe(true);
    expect(accept({ route: "local" })).toEqual({ kind: "accept", route: "local" });
  });
});
