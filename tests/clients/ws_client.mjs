// Node's `ws` client against an echo server of the transport: run with
// `node tests/clients/ws_client.mjs URL`; prints what it saw as JSON.
import WebSocket from "ws";

const url = process.argv[2];
const socket = new WebSocket(url);
const seen = {};
const messages = [];
let waiting;
socket.on("message", (data, binary) => {
  messages.push(binary ? [...data] : data.toString());
  waiting?.();
});
const next = () =>
  new Promise((resolve) => {
    if (messages.length > 0) return resolve(messages.shift());
    waiting = () => {
      waiting = undefined;
      resolve(messages.shift());
    };
  });
await new Promise((resolve, reject) => {
  socket.once("open", resolve);
  socket.once("error", reject);
});
socket.send("hello from node");
seen.text = await next();
socket.send(Buffer.from([1, 2, 3]));
seen.binary = await next();
// One message in three frames.
socket.send("frag", { fin: false });
socket.send("men", { fin: false });
socket.send("ted", { fin: true });
seen.fragmented = await next();
seen.pong = await new Promise((resolve) => {
  socket.once("pong", (payload) => resolve(payload.toString()));
  socket.ping("are you there");
});
seen.close = await new Promise((resolve) => {
  socket.once("close", (code, reason) => resolve([code, reason.toString()]));
  socket.close(4002, "node done");
});
console.log(JSON.stringify(seen));
