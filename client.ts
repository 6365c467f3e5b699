/**
 * The Shark client SDK, as it was imported before it became the `client/`
 * folder: everything `client/mod.ts` (`@shark/shark/client`) exports, so
 * that imports of `client.ts` keep working.
 *
 * ```ts
 * import { SharkClient } from "./client.ts"; // or "@shark/shark/client"
 *
 * const client = new SharkClient("wss://shark.example.com/");
 * await client.subscribe("chat.lobby").ready;
 * ```
 *
 * @module
 */
export * from "./client/mod.ts";
