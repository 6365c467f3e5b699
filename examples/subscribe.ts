/**
 * The smallest Shark client: connects, subscribes to one subscription and
 * prints every frame Shark sends, as it arrives, until Shark closes the
 * connection or you press Ctrl-C.
 *
 * ```sh
 * deno run --allow-net examples/subscribe.ts [SUBSCRIPTION] [URL]
 * deno task subscribe hello.world              # ws://127.0.0.1:9000/ by default
 * ```
 *
 * @module
 */
const [subscription = "hello.world", url = "ws://127.0.0.1:9000/"] = Deno.args;

const socket = new WebSocket(url);
let opened = false;
socket.onopen = () => {
  opened = true;
  console.error(`connected to ${url}; subscribing to ${subscription}`);
  socket.send(JSON.stringify({ event: "subscribe", subscription }));
};
socket.onmessage = ({ data }) => console.log(data);
socket.onclose = ({ code, reason }) => {
  if (!opened) {
    console.error(`cannot connect to ${url}: is Shark running (deno task quickstart)?`);
    Deno.exit(1);
  }
  console.error(`closed by Shark: ${code} ${reason}`);
  Deno.exit(code === 1000 ? 0 : 1);
};
Deno.addSignalListener("SIGINT", () => {
  socket.close(1000);
  Deno.exit(0);
});
