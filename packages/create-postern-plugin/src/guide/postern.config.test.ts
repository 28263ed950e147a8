import { createServer } from "@postern/core";
import { describe, expect, it } from "vitest";
import config from "./postern.config.ts";

describe("the guide's postern.config.ts", () => {
  it("is a valid config composing the guide's plugins with published ones, in the order written", () => {
    const server = createServer(config);
    expect(server.hookOrder().rcptTo).toEqual(["http-recipient-policy", "@postern/recipients"]);
    expect(server.hookOrder().data).toEqual(["return-path"]);
    expect(server.hookOrder().queue).toEqual(["@postern/store-maildir"]);
  });
});
