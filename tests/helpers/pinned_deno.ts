/**
 * The Deno version Shark is tested and deployed on, from `.deno-version`: the
 * one place that says it (`.ci/run` reads it; the README, the Dockerfile and
 * the systemd unit are held to it by `tests/deploy_test.ts`).
 *
 * @module
 */
import { ROOT } from "./process.ts";

/** `.deno-version`'s text, e.g. `2.9.6`. */
export const PINNED_DENO: string = (await Deno.readTextFile(`${ROOT}.deno-version`)).trim();
