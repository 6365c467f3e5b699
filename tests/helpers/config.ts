/**
 * The configuration tests' one question: which problems does `loadConfig`
 * name for a configuration it refuses?
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../mod.ts";

/** The problems a refused configuration is refused for; fails the test when it is accepted. */
export function problems(config: unknown, env: Record<string, string> = {}): readonly string[] {
  try {
    loadConfig(config, (name) => env[name]);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("the configuration was accepted");
}
