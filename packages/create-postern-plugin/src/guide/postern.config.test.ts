import { createServer } from "@postern/core";
import { runOrder } from "@postern/testing";
import { describe, expect, it } from "vitest";
import config from "./postern.config.ts";

describe("the guide's postern.config.ts", () => {
  it("is a valid config composing the guide's plugins with published ones, in the order written", () => {
    const server = createServer(config);
    expect(runOrder(server, "rcptTo")).toEqual(["http-recipient-policy", "@postern/recipients"]);
    expect(runOrder(server, "data")).toEqual(["return-path"]);
    expect(runOrder(server, "queue")).toEqual(["@postern/store-maildir"]);
  });
});
