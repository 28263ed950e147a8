// A Maildir queue plugin for Haraka (it has none built in), for compare.ts's like-for-like row:
// the message goes to <root>/tmp and is fsynced (the write stream's `flush`), linked into
// <root>/new, new/ is fsynced, the tmp/ name removed — and only then next(OK), so Haraka answers
// 250 after the same durable work as Postern's store. One directory fsync per message, as a
// plugin written the obvious way does. The root (one mailbox) is config/bench_maildir_root.
// compare/haraka.ts copies it into the Haraka config folder as plugins/bench_maildir.js.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");

let sequence = 0;

exports.register = function () {
  this.root = this.config.get("bench_maildir_root");
  for (const sub of ["tmp", "new", "cur"]) fs.mkdirSync(path.join(this.root, sub), { recursive: true, mode: 0o700 });
  this.register_hook("queue", "store");
};

function fsyncPath(file, flags, callback) {
  fs.open(file, flags, (error, fd) => {
    if (error) return callback(error);
    fs.fsync(fd, (syncError) => fs.close(fd, (closeError) => callback(syncError || closeError)));
  });
}

exports.store = function (next, connection) {
  const txn = connection.transaction;
  const name = `${Date.now()}.P${process.pid}Q${++sequence}R${crypto.randomBytes(8).toString("hex")}.haraka`;
  const tmp = path.join(this.root, "tmp", name);
  const target = path.join(this.root, "new", name);
  let failed = false;
  const fail = (error) => {
    failed = true;
    connection.logerror(this, `Maildir delivery failed: ${error.message}`);
    fs.unlink(tmp, () => next(DENYSOFT, "Mailbox temporarily unavailable"));
  };
  // flush: fsync before the stream closes.
  const out = fs.createWriteStream(tmp, { flags: "wx", mode: 0o600, flush: true });
  out.once("error", fail);
  out.once("close", () => {
    if (failed) return;
    fs.link(tmp, target, (linkError) => {
      if (linkError) return fail(linkError);
      fsyncPath(path.join(this.root, "new"), "r", (dirError) => {
        if (dirError) return fs.unlink(target, () => fail(dirError));
        fs.unlink(tmp, () => next(OK));
      });
    });
  });
  txn.message_stream.pipe(out, { line_endings: "\r\n" });
};
