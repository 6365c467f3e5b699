/**
 * Credentials kept out of logs and error messages (SPEC section 2: "credentials
 * in a URL are never written to logs").
 *
 * @module
 */

/**
 * Hides the user name and password of a URL so that it can be written to
 * logs and errors; text that is not a URL, or has no credentials, is returned
 * as it is.
 *
 * @example
 * ```ts
 * redactUrl("redis://:hunter2@10.0.0.1:6379/0"); // "redis://:*****@10.0.0.1:6379/0"
 * ```
 */
export function redactUrl(text: string): string {
  const url = URL.parse(text);
  if (!url || (!url.password && !url.username)) return text;
  url.username = url.username ? "*****" : "";
  url.password = url.password ? "*****" : "";
  return url.href;
}
