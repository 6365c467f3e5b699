/**
 * Building blocks of the configuration schema (SPEC section 6) shared by its parts: durations,
 * field lists, URL checks and secrets that may come from the environment.
 *
 * @module
 */
import { z } from "zod";
import { redactUrl } from "./redact.ts";

/** Looks up an environment variable for `{"env": "NAME"}` secrets. */
export type EnvLookup = (name: string) => string | undefined;

export const seconds = z.number().min(0);
export const positiveSeconds = z.number().gt(0);
export const fieldList = z.array(z.string().min(1));

export function checkHttpUrl(text: string): string | undefined {
  const url = URL.parse(text);
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return `expected an http:// or https:// URL, got ${JSON.stringify(redactUrl(text))}`;
  }
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
