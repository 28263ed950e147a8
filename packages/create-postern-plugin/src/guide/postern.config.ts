import { defineConfig } from "@postern/core";
import recipients from "@postern/recipients";
import maildir from "@postern/store-maildir";
import httpRecipientPolicy from "./http-recipient-policy.ts";
import returnPath from "./return-path.ts";

export default defineConfig({
  hostname: "mx.example.com",
  listeners: [{ address: "127.0.0.1", port: 2525 }],
  plugins: [
    httpRecipientPolicy({ url: "http://127.0.0.1:8080/policy", timeoutMs: 1500 }),
    recipients({ domains: ["example.com"] }),
    returnPath(),
    maildir({ root: "./data/maildir" }),
  ],
});
