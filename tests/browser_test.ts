/**
 * The demo chat (`examples/demo`) in real Chromium, driven by
 * playwright-core: two pages in one room see each other's posts and each
 * other in the member list, and a page that closes leaves the other's; Shark
 * (`main.ts`) restarted mid-session sends both pages through reconnecting
 * back to connected, and they show what happened meanwhile: the room's fresh
 * state on the memory adapter, the messages published during the gap
 * (through the other node) on Redis with history; on both, the member list
 * read again.
 *
 * Skipped, with a loud warning, without `/usr/bin/chromium` (Redis case:
 * without `redis-server`). `SHARK_SCREENSHOT=1` writes
 * `examples/demo/screenshot.png`, the picture in the README.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { Demo } from "../examples/demo/main.ts";
import { freePort } from "./helpers/loopback.ts";
import { redisAvailable, RedisServer } from "./helpers/redis_server.ts";

const CHROMIUM = "/usr/bin/chromium";
const noChromium = !(await Deno.stat(CHROMIUM).then(() => true, () => false));
if (noChromium) console.warn(`%c${CHROMIUM} not found: browser tests skipped`, "color: red");
const noRedis = noChromium || !(await redisAvailable());
const SCREENSHOT = new URL("../examples/demo/screenshot.png", import.meta.url);
const WAIT = { timeout: 20_000 };

/** Chromium, closed when the test's `await using` scope ends. */
async function launch(): Promise<Browser & AsyncDisposable> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}

/** Opens the demo as `user` in the lobby and waits until it has joined. */
async function open(browser: Browser, demo: Demo, user: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
  await page.goto(`${demo.url}?user=${user}&room=lobby`);
  await page.locator('#state[data-state="connected"]').waitFor(WAIT);
  await page.locator("#log li", { hasText: "joined #lobby" }).waitFor(WAIT);
  return page;
}

async function post(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#post button");
}

/** A chat message (not a joined/left line). */
function message(page: Page, text: string) {
  return page.locator("#messages li[data-id]", { hasText: text });
}

/** A joined/left line of the chat. */
function presenceLine(page: Page, text: string) {
  return page.locator("#messages li.presence", { hasText: text });
}

/** Waits until the page's member list shows exactly `users`, in order. */
async function members(page: Page, users: string[]): Promise<void> {
  const shown = '[...document.querySelectorAll("#members li")].map((item) => item.dataset.user)';
  await page.waitForFunction(
    `JSON.stringify(${shown}) === ${JSON.stringify(JSON.stringify(users))}`,
    undefined,
    WAIT,
  )
    .catch(async (error) => {
      throw new Error(
        `members ${await page.evaluate(`JSON.stringify(${shown})`)}, not ${users}: ${error}`,
      );
    });
  assert.equal(await page.locator("#count").textContent(), String(users.length));
}

/** Restarts Shark node 0 while both pages watch; `meanwhile` runs while it is down. */
async function restartShark(demo: Demo, pages: Page[], meanwhile: () => Promise<void>) {
  await demo.stopShark(0);
  for (const page of pages) {
    await page.locator('#state[data-state="disconnected"]', { hasText: "reconnecting" })
      .waitFor(WAIT);
    await page.locator("#log li", { hasText: "disconnected (1001 server shutting down)" })
      .waitFor(WAIT);
  }
  await meanwhile();
  await demo.startShark(0);
  for (const page of pages) {
    await page.locator("#log li", { hasText: "reconnected" }).waitFor(WAIT);
    await page.locator('#state[data-state="connected"]').waitFor(WAIT);
  }
}

Deno.test({
  name:
    "browser, memory adapter: each page lists the other, a post appears on the other page; Shark restarted → both pages reconnect and show the room's fresh state and members; a page that closes leaves the other's list, with a line",
  ignore: noChromium,
  async fn() {
    await using demo = await Demo.start({ port: 0, sharkPort: freePort(), logs: false });
    await using browser = await launch();
    const ada = await open(browser, demo, "ada");
    const bob = await open(browser, demo, "bob");
    await presenceLine(ada, "bob joined").waitFor(WAIT);
    await members(ada, ["ada", "bob"]);
    await members(bob, ["ada", "bob"]);
    assert.equal(await presenceLine(bob, "joined").count(), 0, "no join of members already there");
    assert.equal(await ada.locator('#members li[data-user="ada"] small').textContent(), "(you)");
    await post(ada, "hello from ada");
    await message(bob, "hello from ada").waitFor(WAIT);
    await post(bob, "hi ada");
    await message(ada, "hi ada").waitFor(WAIT);

    await restartShark(demo, [ada, bob], async () => {
      await demo.service.post("lobby", "bot", "posted while Shark was down");
    });
    for (const page of [ada, bob]) {
      await page.locator("#log li", { hasText: "fresh room state loaded" }).waitFor(WAIT);
      await message(page, "posted while Shark was down").waitFor(WAIT);
      assert.equal(await page.locator("#messages li[data-id]").count(), 3);
      // The list shown before the restart went stale; it is read again after the reconnect.
      await members(page, ["ada", "bob"]);
    }
    await post(bob, "still here");
    await message(ada, "still here").waitFor(WAIT);
    if (Deno.env.get("SHARK_SCREENSHOT")) await ada.screenshot({ path: SCREENSHOT.pathname });

    await bob.close();
    await presenceLine(ada, "bob left").waitFor(WAIT);
    await members(ada, ["ada"]);
  },
});

Deno.test({
  name:
    "browser, Redis with history and presence: Shark restarted → both pages reconnect, recover, show the messages published during the gap once, and list each other again",
  ignore: noRedis,
  async fn() {
    await using redis = await RedisServer.start();
    await using demo = await Demo.start({
      port: 0,
      sharkPort: freePort(),
      otherPort: freePort(),
      redisUrl: redis.url(),
      logs: false,
    });
    await using browser = await launch();
    const ada = await open(browser, demo, "ada");
    const bob = await open(browser, demo, "bob");
    await post(ada, "before the restart");
    await message(bob, "before the restart").waitFor(WAIT);

    await restartShark(demo, [ada, bob], async () => {
      // The service publishes through the other node; the history in Redis keeps them.
      await demo.service.post("lobby", "bot", "missed one");
      await demo.service.post("lobby", "bot", "missed two");
    });
    for (const page of [ada, bob]) {
      await page.locator("#log li", { hasText: "caught up: 2 missed message(s) follow" })
        .waitFor(WAIT);
      await message(page, "missed two").waitFor(WAIT);
      const texts = await page.locator("#messages li[data-id]").allTextContents();
      assert.deepEqual(texts.map((text) => text.replace(/\d.*$/, "")), [
        "ada before the restart",
        "bot missed one",
        "bot missed two",
      ]);
      assert.equal(await page.locator("#log li", { hasText: "fresh room state" }).count(), 0);
      // The members live in Redis: the restarted node's graceful shutdown removed them, and
      // the pages, subscribed again, read each other back.
      await members(page, ["ada", "bob"]);
    }
  },
});
