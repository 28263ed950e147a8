// A deliberately broken store for the crash test's negative control: it answers accept() as soon
// as it has read the message and writes it to disk half a second later. A crash in between loses
// acknowledged mail, and the crash test must notice.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { accept, type Plugin } from "@postern/core";

export default function ackEarlyStore(options: { dir: string }): Plugin {
  return {
    name: "reliability:ack-early-store",
    hooks: {
      async queue(transaction, message) {
        const chunks: Buffer[] = [];
        for await (const chunk of message.stream()) chunks.push(chunk as Buffer);
        const bytes = Buffer.concat(chunks);
        setTimeout(() => {
          writeFile(join(options.dir, `${transaction.id}.eml`), bytes).catch(() => undefined);
        }, 500);
        return accept();
      },
    },
  } satisfies Plugin;
}
