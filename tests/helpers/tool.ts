/**
 * Whether an optional program a test runs (haproxy, redis-server, openssl,
 * Python's websockets, node, Chromium) works on this machine. A test that
 * needs a missing one is skipped with a loud warning, never errors:
 * `new Deno.Command(x).output()` throws at once, before any promise, when `x`
 * is not found, so a `.then(ok, () => false)` on it guards nothing.
 *
 * @module
 */

/** How {@link toolAvailable} tries a program, and what its warning says. */
export interface ToolCheck {
  /** Arguments of a run that succeeds where the program works; `--version` by default. */
  readonly args?: readonly string[];
  /** The program's name in the warning (`python3 websockets`); the command by default. */
  readonly name?: string;
  /** What is skipped without it (`the Redis tests`), for the warning. */
  readonly skips?: string;
}

const checked = new Map<string, Promise<boolean>>();

/**
 * Runs `command` with `check.args` once per process and command line: true
 * when it exits 0; false (after one loud warning) when it is not found, cannot
 * be started or fails.
 *
 * @example
 * ```ts
 * const ignore = !(await toolAvailable("haproxy", { args: ["-v"], skips: "haproxy -c" }));
 * ```
 */
export function toolAvailable(command: string, check: ToolCheck = {}): Promise<boolean> {
  const args = check.args ?? ["--version"];
  const key = JSON.stringify([command, ...args]);
  let result = checked.get(key);
  if (result === undefined) {
    result = runs(command, args).then((ok) => {
      if (!ok) {
        console.warn(
          `\n*** ${check.name ?? command} not installed: ${
            check.skips ?? "its tests"
          } SKIPPED ***\n`,
        );
      }
      return ok;
    });
    checked.set(key, result);
  }
  return result;
}

async function runs(command: string, args: readonly string[]): Promise<boolean> {
  try {
    const output = await new Deno.Command(command, {
      args: [...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return output.success;
  } catch {
    return false;
  }
}
