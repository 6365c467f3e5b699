/**
 * The building blocks the parts of the configuration schema (SPEC section 6)
 * share: durations, key lists, and strings that may come from the
 * environment (secrets and URLs), with their checks.
 *
 * @module
 */
import { z } from "zod";
import { redactUrl } from "./redact.ts";
import { redisUrlProblem } from "./redis_url.ts";
import { MAX_TIMER_MS } from "../clock.ts";

/** Looks up an environment variable for `{"env": "NAME"}` secrets. */
export type EnvLookup = (name: string) => string | undefined;

/** A duration in seconds. It becomes a timer, and a timer waits at most `MAX_TIMER_MS`. */
export const seconds = z.number().min(0)
  .max(MAX_TIMER_MS / 1000, `at most ${MAX_TIMER_MS / 1000} seconds (~24.8 days)`);
/** A duration in seconds, more than 0. */
export const positiveSeconds = seconds.gt(0);
/** A list of JSON keys. */
export const fieldList = z.array(z.string().min(1));

/**
 * Why `text` is not an http(s) URL a callback can be sent to, if it is not
 * one (the URL redacted): its credentials become a Basic header, so they must
 * decode.
 */
export function checkHttpUrl(text: string): string | undefined {
  const url = URL.parse(text);
  const shown = JSON.stringify(redactUrl(text));
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return `expected an http:// or https:// URL, got ${shown}`;
  }
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    return `the user name or password is not valid percent-encoding, got ${shown}`;
  }
}

/** The shortest `publish_api.secret`: anyone who guesses it publishes to every client. */
export const MIN_PUBLISH_SECRET = 16;

/** Why `text` is too weak a `publish_api.secret`, if it is. */
export function checkPublishSecret(text: string): string | undefined {
  if (text.length < MIN_PUBLISH_SECRET) return `must be at least ${MIN_PUBLISH_SECRET} characters`;
}

/** Why `text` is not a Redis URL the client can connect with, if it is not one (redacted). */
export function checkRedisUrl(text: string): string | undefined {
  const problem = redisUrlProblem(text);
  if (problem) return `${problem}, got ${JSON.stringify(redactUrl(text))}`;
}

/**
 * A string that may instead be given as `{"env": "NAME"}`; resolved while
 * parsing so that the rest of Shark only ever sees strings.
 */
export function secret(env: EnvLookup, check?: (text: string) => string | undefined) {
  const fromEnv = z.strictObject({
    env: z.string().min(1).describe("The environment variable holding the value."),
  });
  return z.union([z.string(), fromEnv], {
    error: 'expected a string or {"env": "NAME"}',
  }).transform((value, ctx) => {
    const text = typeof value === "string" ? value : env(value.env);
    if (text === undefined) {
      const name = (value as { env: string }).env;
      ctx.addIssue({ code: "custom", message: `environment variable ${name} is not set` });
      return z.NEVER;
    }
    const problem = check?.(text);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem });
      return z.NEVER;
    }
    return text;
  });
}
