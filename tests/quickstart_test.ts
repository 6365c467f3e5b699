/**
 * The README's first screen, run as a newcomer runs it: its first code block
 * starts Shark on embedded defaults (which says what to do next), its second
 * starts the quickstart Shark, subscribes with the example client and
 * publishes with `curl`, and the client prints the subscribe reply and the
 * delivered message.
 *
 * Two substitutions, both mechanical: `npx -y deno@VERSION` (VERSION from
 * `.deno-version`) becomes the Deno running this test (the same command
 * without the npm download), and port 9000 becomes a free port (other
 * programs on a shared machine may hold 9000): `--port P` is appended to the
 * Shark commands, the URL `ws://127.0.0.1:P/` to the client's, and
 * `127.0.0.1:9000` in `curl` becomes `127.0.0.1:P`. That 9000 is what the
 * commands use as written is checked too.
 *
 * @module
 */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { loadConfig } from "../mod.ts";
import { Running } from "./helpers/command.ts";
import { ROOT } from "./helpers/process.ts";
import { freePort } from "./helpers/loopback.ts";
import { PINNED_DENO } from "./helpers/pinned_deno.ts";

const LAUNCHER = `npx -y deno@${PINNED_DENO}`;

/** A README command run by bash, with this test's Deno in place of the npx launcher. */
function step(command: string): Running {
  return Running.shell(command.replaceAll(LAUNCHER, `'${Deno.execPath()}'`));
}

/** A command line without its trailing `# comment`. */
function withoutComment(line: string): string {
  return line.replace(/\s+#\s.*$/, "");
}

/** The commands of each fenced block before the first `##` heading, continuations joined. */
async function firstScreenBlocks(): Promise<string[][]> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const firstScreen = readme.slice(0, readme.indexOf("\n## "));
  const blocks = [...firstScreen.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) =>
    match[1].replace(/\\\n\s*/g, "").split("\n").filter((line) => line.trim() !== "")
  );
  assert.equal(blocks.length, 2, "the first screen has two sh blocks");
  return blocks;
}

function parsed(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

Deno.test("the README's first commands: task start on defaults says what to do next; task test exists", async () => {
  const [commands] = await firstScreenBlocks();
  assert.deepEqual(commands.map(withoutComment), [
    `${LAUNCHER} task start`,
    `${LAUNCHER} task test`,
  ]);
  // Running the suite from inside itself would recurse; the task is what CI runs.
  assert.ok(denoJson.tasks.test);
  const port = freePort();
  const start = step(`${withoutComment(commands[0])} --port ${port}`);
  try {
    await start.line("stderr", (line) => line.includes(`listening on ws://127.0.0.1:${port}`));
    const hint = parsed(
      await start.line("stderr", (line) => line.includes("deno task quickstart")),
    )!;
    for (const task of String(hint.message).match(/(?<=deno task )\w+/g) ?? []) {
      assert.ok(task in denoJson.tasks, `the hint names deno task ${task}, which does not exist`);
    }
    const named = String(hint.message).match(/[\w/.-]*\w\.(?:json|md)/g) ?? [];
    assert.ok(named.length >= 3, String(hint.message));
    for (const path of named) await Deno.stat(`${ROOT}${path}`); // every file it names exists
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    assert.equal((await start.stop()).code, 0);
  }
});

Deno.test("the README's quickstart: subscribe, publish with curl, the client prints the message", async () => {
  const [, commands] = await firstScreenBlocks();
  assert.equal(commands.length, 3, commands.join("\n"));
  const [server, client, publish] = commands;
  assert.match(server, /task quickstart/);
  assert.match(client, /task subscribe hello\.world/);
  assert.match(publish, /^curl .*127\.0\.0\.1:9000\/publish/);
  // As written, all three meet on port 9000.
  const quickstart = JSON.parse(await Deno.readTextFile(`${ROOT}examples/quickstart.json`));
  assert.equal(loadConfig(quickstart).server.port, 9000);
  const clientSource = await Deno.readTextFile(`${ROOT}examples/subscribe.ts`);
  assert.ok(clientSource.includes(`url = "ws://127.0.0.1:9000/"`));

  const port = freePort();
  const shark = step(`${withoutComment(server)} --port ${port}`);
  let subscriber: Running | undefined;
  try {
    await shark.line("stderr", (line) => line.includes(`listening on ws://127.0.0.1:${port}`));
    subscriber = step(`${withoutComment(client)} ws://127.0.0.1:${port}/`);
    await subscriber.line("stdout", (line) => {
      const frame = parsed(line);
      return frame?.event === "subscribe" && frame.status === "ok" &&
        frame.subscription === "hello.world";
    });
    const curl = step(publish.replace("127.0.0.1:9000", `127.0.0.1:${port}`));
    assert.equal((await curl.done).code, 0, curl.stderr.join("\n"));
    assert.deepEqual(parsed(curl.stdout.join("")), { status: "ok", published: 1 });
    const envelope = JSON.parse(publish.match(/-d '([^']*)'/)![1]);
    const delivered = parsed(
      await subscriber.line("stdout", (line) => parsed(line)?.event === "message"),
    )!;
    assert.equal(delivered.subscription, envelope.subscription);
    assert.deepEqual(delivered.data, envelope.data);
  } finally {
    await subscriber?.stop();
    assert.equal((await shark.stop()).code, 0);
  }
});
