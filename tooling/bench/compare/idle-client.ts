// Opens many SMTP sessions and leaves them idle after EHLO, in its own process (with its own
// file descriptor limit) so the server's memory can be read while they are open.
//   node idle-client.ts <port> <count>
// Tells its parent {type:"open", open, failed} once every session is greeted (or failed), and
// closes them all on {type:"close"}, answering {type:"closed"}.
import { connect, type Socket } from "node:net";

const port = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 5000);
const parallel = 200;
const sockets: Socket[] = [];
let failed = 0;

function openSession(): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let received = "";
    let greeted = false;
    const fail = () => {
      failed++;
      socket.destroy();
      resolve();
    };
    socket.setEncoding("latin1");
    socket.on("error", fail);
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (!greeted && /^220 .*\r\n/m.test(received)) {
        greeted = true;
        received = "";
        socket.write("EHLO idle.bench\r\n");
      } else if (greeted && /^250 .*\r\n/m.test(received)) {
        socket.removeListener("error", fail);
        socket.on("error", () => undefined);
        socket.removeAllListeners("data");
        sockets.push(socket);
        resolve();
      } else if (/^[45]\d\d .*\r\n/m.test(received)) fail();
    });
  });
}

let next = 0;
async function worker(): Promise<void> {
  while (next < count) {
    next++;
    await openSession();
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
process.send!({ type: "open", open: sockets.filter((socket) => !socket.destroyed).length, failed });

process.on("message", (request: { type: string }) => {
  if (request.type !== "close") return;
  for (const socket of sockets) socket.destroy();
  process.send!({ type: "closed" });
  setTimeout(() => process.exit(0), 100);
});
