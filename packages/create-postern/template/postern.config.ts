// The mail server of my-mx: what it listens on, which domains it takes mail for, where it keeps
// it. `npm run check` validates it (and what it depends on); `npm start` runs it. Relative paths
// are relative to this file's folder. See README.md for going live on port 25 with TLS.
import { defineConfig } from "@postern/core";
import recipients from "@postern/recipients";
import maildir from "@postern/store-maildir";

// Where it listens and keeps its data; the test sets both to run beside a server already running.
const port = Number(process.env.POSTERN_PORT ?? 2525);
const data = process.env.POSTERN_DATA ?? "./data";

export default defineConfig({
  hostname: "mx.example.com",
  listeners: [
    // Loopback while you try it; for the internet: { address: "0.0.0.0", port: 25, tls: "starttls", … }.
    { address: "127.0.0.1", port },
  ],
  limits: { maxMessageSize: "25MB", maxRecipients: 100 },
  spoolDir: `${data}/spool`,
  plugins: [
    // Mail for these domains is accepted (any local part; list `mailboxes` to accept only those);
    // every other recipient is refused: no open relay.
    recipients({ domains: ["example.com"] }),
    // Each message lands in <data>/maildir/<domain>/<user>/new/, readable by Dovecot.
    maildir({ root: `${data}/maildir` }),
  ],
});
