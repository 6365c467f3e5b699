/**
 * Credentials kept out of logs and error messages (SPEC section 2: "credentials
 * in a URL are never written to logs"). A URL may carry them in its user
 * name and password, and as tokens in its query (`?api_key=...`): both are
 * masked, while the scheme, host, port, path and parameter names stay
 * readable.
 *
 * @module
 */

const MASK = "*****";

/** URLs inside free text (an error message), up to a space, quote or bracket. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()[\]{}]+/gi;

/**
 * Masks the user name, the password, every query value (a parameter
 * without `=` entirely) and the fragment of a URL, so that it can be written
 * to logs and errors; text that is not a URL, or has none of these, is
 * returned as it is.
 *
 * @example
 * ```ts
 * redactUrl("redis://:hunter2@10.0.0.1:6379/0"); // "redis://:*****@10.0.0.1:6379/0"
 * redactUrl("https://hooks.internal/cb?token=abc&v=2"); // "https://hooks.internal/cb?token=*****&v=*****"
 * ```
 */
export function redactUrl(text: string): string {
  const url = URL.parse(text);
  if (!url || (!url.password && !url.username && !url.search && !url.hash)) return text;
  url.username = url.username ? MASK : "";
  url.password = url.password ? MASK : "";
  if (url.search) {
    url.search = url.search.slice(1).split("&").map((part) => {
      const equals = part.indexOf("=");
      return equals < 0 ? (part && MASK) : `${part.slice(0, equals)}=${MASK}`;
    }).join("&");
  }
  if (url.hash) url.hash = MASK;
  return url.href;
}

/**
 * {@link redactUrl} applied to every URL inside a text, such as the message of
 * a failed `fetch`, which names the URL it tried.
 *
 * @example
 * ```ts
 * redactUrls("error sending request for url (http://a/cb?token=abc)"); // "... (http://a/cb?token=*****)"
 * ```
 */
export function redactUrls(text: string): string {
  return text.replace(URL_IN_TEXT, redactUrl);
}
