/**
 * The operator files in `Dockerfile` and `deploy/` are parsed and held to what
 * Shark really is: the image copies every module the CLI runs and its command
 * serves with the permissions it grants; Compose and systemd run that same
 * command with a configuration the schema accepts and give the graceful
 * shutdown more time than `server.shutdown_timeout`; HAProxy reaches every
 * node and outlives Shark's keep-alive; the Grafana dashboard queries only
 * metrics a real Shark exposes; every file that names a Deno version names
 * `.deno-version`'s. No Docker engine or systemd runs here: these are checks
 * of the files, plus real runs of Shark with their arguments (and of
 * `haproxy -c` and `systemd-analyze verify` where installed, skipped loudly
 * where not).
 *
 * @module
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { loadConfig, type SharkConfig } from "../mod.ts";
import { Running } from "./helpers/command.ts";
import { PINNED_DENO } from "./helpers/pinned_deno.ts";
import { ROOT, SharkProcess } from "./helpers/process.ts";
import { tempDir } from "./helpers/temp.ts";
import { toolAvailable } from "./helpers/tool.ts";

const read = (path: string) => Deno.readTextFile(`${ROOT}${path}`);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

const noHaproxy = !(await toolAvailable("haproxy", {
  args: ["-v"],
  skips: "the check of deploy/haproxy.cfg by HAProxy's own parser",
}));
const noSystemdAnalyze = !(await toolAvailable("systemd-analyze", {
  skips: "the check of deploy/shark.service by systemd's own parser",
}));

/** The Dockerfile's instructions, continuation lines joined, comments left out. */
async function dockerfile(): Promise<{ instruction: string; args: string }[]> {
  const text = (await read("Dockerfile")).replace(/\\\n/g, " ");
  return text.split("\n").filter((line) => line.trim() && !line.trimStart().startsWith("#"))
    .map((line) => {
      const [, instruction, args] = line.trim().match(/^(\w+)\s+(.*)$/)!;
      return { instruction: instruction.toUpperCase(), args };
    });
}

/** The image's command: `deno run`, its permission flags, `main.ts`, then Shark's arguments. */
async function imageCommand(): Promise<{ permissions: string[]; args: string[] }> {
  const cmd = (await dockerfile()).filter((line) => line.instruction === "CMD").at(-1)!;
  return splitCommand(JSON.parse(cmd.args));
}

function splitCommand(argv: string[]): { permissions: string[]; args: string[] } {
  const main = argv.indexOf("main.ts");
  assert.deepEqual(argv.slice(0, 2), ["deno", "run"], argv.join(" "));
  assert.ok(main > 1, `no main.ts in ${argv.join(" ")}`);
  return { permissions: argv.slice(2, main), args: argv.slice(main + 1) };
}

/** Runs `deno run PERMISSIONS main.ts ARGS --check` here; its output when it passes. */
async function check(permissions: string[], args: string[], env: Record<string, string>) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, "main.ts", ...args, "--check"],
    cwd: ROOT,
    env,
    stdin: "null",
  }).output();
  const text = decode(output.stdout) + decode(output.stderr);
  assert.equal(output.code, 0, text);
  return text;
}

/** The configuration the deployment files mount as /etc/shark/shark.json. */
async function deployedConfig(): Promise<SharkConfig> {
  return loadConfig(
    JSON.parse(await read("deploy/shark.json")),
    () => "a secret of 16 characters or more",
  );
}

async function localModules(entries: string[]): Promise<string[]> {
  const modules = new Set<string>();
  for (const entry of entries) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
    }).output();
    const info = JSON.parse(decode(output.stdout));
    for (const { specifier } of info.modules as { specifier: string }[]) {
      if (specifier.startsWith("file:")) modules.add(relative(ROOT, fileURLToPath(specifier)));
    }
  }
  return [...modules];
}

/** Seconds of a systemd or Compose duration such as `40`, `40s` or `1min 30s`. */
function seconds(text: string): number {
  let total = 0;
  for (const [, value, unit] of String(text).matchAll(/(\d+(?:\.\d+)?)\s*(h|min|m|s|ms)?/g)) {
    total += Number(value) *
      ({ h: 3600, min: 60, m: 60, s: 1, ms: 0.001 }[unit ?? "s"] as number);
  }
  return total;
}

Deno.test("the Dockerfile: Deno's official image of the pinned version, every module the CLI runs, an unprivileged user", async () => {
  const lines = await dockerfile();
  assert.equal(lines[0].instruction, "FROM");
  assert.equal(lines[0].args, `denoland/deno:${PINNED_DENO}`);
  const copied: string[] = [];
  for (const { instruction, args } of lines) {
    if (instruction !== "COPY") continue;
    const parts = args.split(/\s+/).filter((part) => !part.startsWith("--"));
    for (const source of parts.slice(0, -1)) {
      await Deno.stat(`${ROOT}${source}`); // every source exists
      copied.push(source.replace(/\/$/, ""));
    }
  }
  const install = lines.findIndex((line) => /deno install --frozen/.test(line.args));
  const firstCode = lines.findIndex((line) =>
    line.instruction === "COPY" && /main\.ts/.test(line.args)
  );
  assert.ok(
    install > 0 && install < firstCode,
    "dependencies are installed before the code is copied",
  );
  const runs = ["main.ts", "cli/worker.ts", "adapters/redis.ts"];
  const missing = (await localModules(runs)).filter((module) =>
    !copied.some((path) => module === path || module.startsWith(`${path}/`))
  );
  assert.deepEqual(missing, [], "modules the CLI runs that the image lacks");
  const user = lines.filter((line) => line.instruction === "USER").at(-1);
  assert.ok(user && !["root", "0"].includes(user.args), "the server does not run as root");
});

Deno.test("the image's command serves with only the permissions it grants", async () => {
  const { permissions, args } = await imageCommand();
  assert.ok(!permissions.some((flag) => flag === "-A" || flag === "--allow-all"), "not -A");
  // Later flags win: loopback and a free port here instead of the container's 0.0.0.0:9000.
  const shark = new Running([
    Deno.execPath(),
    "run",
    ...permissions,
    "main.ts",
    ...args,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
  ]);
  try {
    const line = await shark.line(
      "stderr",
      (line) => line.includes("listening on ws://127.0.0.1:"),
    );
    const port = JSON.parse(line).properties.port;
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    assert.equal((await shark.stop()).code, 0, shark.stderr.join("\n"));
  }
});

Deno.test("compose.yaml: Redis and two Shark nodes running the image's command with a valid configuration behind a load balancer", async () => {
  const compose = parseYaml(await read("deploy/compose.yaml"), { merge: true });
  const services = compose.services as Record<string, Record<string, unknown>>;
  const image = await imageCommand();
  const nodes = Object.entries(services).filter(([, service]) =>
    (service.build as { dockerfile?: string } | undefined)?.dockerfile === "Dockerfile"
  );
  assert.ok(nodes.length >= 2, "at least two Shark nodes");
  const config = await deployedConfig();
  assert.equal(config.pubsub.adapter, "redis");
  const redisHost = new URL(config.pubsub.redis.url).hostname;
  assert.ok(services[redisHost], `the Redis of the configuration (${redisHost}) is a service`);
  for (const [name, node] of nodes) {
    assert.equal((node.build as { context: string }).context, "..", name);
    const { permissions, args } = splitCommand(node.command as string[]);
    assert.deepEqual(permissions, image.permissions, `${name} runs with the image's permissions`);
    const mount = (node.volumes as string[]).find((volume) => volume.startsWith("./shark.json:"))!;
    const inContainer = mount.split(":")[1];
    assert.equal(args[args.indexOf("--config") + 1], inContainer, name);
    // The node's own arguments and environment, with the mounted file as it is in the repository.
    const env = Object.fromEntries(
      Object.keys(node.environment as Record<string, string>).map((
        key,
      ) => [key, "a secret of 16 characters or more"]),
    );
    const local = args.map((arg) => arg === inContainer ? "deploy/shark.json" : arg);
    assert.match(await check(permissions, local, env), /configuration is valid/);
    assert.deepEqual(node.depends_on, { [redisHost]: { condition: "service_healthy" } });
    assert.ok(
      seconds(node.stop_grace_period as string) > config.server.shutdown_timeout,
      `${name}: stop_grace_period exceeds server.shutdown_timeout`,
    );
    const probe = (node.healthcheck as { test: string[] }).test.join(" ");
    assert.ok(probe.includes(`127.0.0.1:${config.server.port}/healthz`), probe);
  }
  const balancer = Object.values(services).find((service) =>
    (service.volumes as string[] | undefined)?.some((volume) => volume.startsWith("./haproxy.cfg:"))
  );
  assert.ok(balancer, "a load balancer configured by haproxy.cfg");
  for (const [name] of nodes) {
    assert.ok((balancer.depends_on as string[]).includes(name), `the balancer waits for ${name}`);
  }
});

/** haproxy.cfg as sections (`backend shark`) of directive lines. */
async function haproxySections(): Promise<Map<string, string[]>> {
  const sections = new Map<string, string[]>();
  let current: string[] = [];
  for (const raw of (await read("deploy/haproxy.cfg")).split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    if (/^\S/.test(raw)) sections.set(line, current = []);
    else current.push(line);
  }
  return sections;
}

Deno.test("haproxy.cfg: HTTP mode (upgrades pass), every node behind /healthz checks, tunnels outlive Shark's keep-alive", async () => {
  const sections = await haproxySections();
  const defaults = sections.get("defaults")!;
  assert.ok(defaults.includes("mode http"), "HTTP mode passes WebSocket upgrades through");
  const backendName = [...sections.keys()].find((name) => name.startsWith("backend "))!;
  const backend = sections.get(backendName)!;
  const config = await deployedConfig();
  const servers = backend.filter((line) => line.startsWith("server "))
    .map((line) => line.split(/\s+/)[2]);
  const compose = parseYaml(await read("deploy/compose.yaml"), { merge: true });
  const nodes = Object.entries(compose.services as Record<string, { build?: unknown }>)
    .filter(([, service]) => service.build).map(([name]) => `${name}:${config.server.port}`);
  assert.deepEqual(servers.sort(), nodes.sort(), "one server line per Shark node, on its port");
  assert.ok(backend.includes("http-check send meth GET uri /healthz"));
  assert.ok(backend.includes("http-check expect status 200"));
  assert.ok(backend.some((line) => /^default-server .*\bcheck\b/.test(line)));
  const tunnel = defaults.find((line) => line.startsWith("timeout tunnel "))!;
  assert.ok(
    seconds(tunnel.split(/\s+/)[2]) > config.ws_ping.interval + config.ws_ping.timeout,
    "an idle upgraded connection outlives Shark's keep-alive",
  );
});

Deno.test({
  name: "haproxy.cfg: HAProxy's own parser accepts it",
  ignore: noHaproxy,
}, async () => {
  const output = await new Deno.Command("haproxy", {
    args: ["-c", "-f", `${ROOT}deploy/haproxy.cfg`],
    stdin: "null",
  }).output();
  assert.ok(output.success, decode(output.stderr));
});

/** shark.service as `section.key` → values (a key may repeat). */
async function unitFile(): Promise<Map<string, string[]>> {
  const keys = new Map<string, string[]>();
  let section = "";
  for (const raw of (await read("deploy/shark.service")).split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const header = line.match(/^\[(\w+)\]$/);
    if (header) {
      section = header[1];
      continue;
    }
    const [, key, value] = line.match(/^(\w+)=(.*)$/)!;
    keys.set(`${section}.${key}`, [...keys.get(`${section}.${key}`) ?? [], value]);
  }
  return keys;
}

Deno.test("shark.service: the image's command, a config check first, SIGTERM with more time than shutdown_timeout, hardened", async () => {
  const unit = await unitFile();
  const one = (key: string) => unit.get(key)?.at(-1);
  const image = await imageCommand();
  const config = await deployedConfig();
  const [start] = unit.get("Service.ExecStart")!;
  const argv = start.split(/\s+/);
  assert.match(argv[0], /\/deno$/);
  const { permissions, args } = splitCommand(["deno", ...argv.slice(1)]);
  assert.deepEqual(permissions, image.permissions, "the same permissions as the image");
  const configPath = args[args.indexOf("--config") + 1];
  const local = (list: string[]) =>
    list.map((arg) => arg === configPath ? "deploy/shark.json" : arg);
  assert.match(
    await check(permissions, local(args), { SHARK_PUBLISH_SECRET: "publish-secret-for-tests" }),
    /valid/,
  );
  const pre = splitCommand(["deno", ...one("Service.ExecStartPre")!.split(/\s+/).slice(1)]);
  assert.deepEqual(pre.args, [...args, "--check"], "the configuration is checked before start");
  assert.match(
    await check(pre.permissions, local(args), { SHARK_PUBLISH_SECRET: "publish-secret-for-tests" }),
    /valid/,
  );
  assert.equal(one("Service.KillSignal"), "SIGTERM");
  assert.ok(
    seconds(one("Service.TimeoutStopSec")!) > config.server.shutdown_timeout,
    "TimeoutStopSec exceeds server.shutdown_timeout",
  );
  assert.ok(one("Service.RestartPreventExitStatus")!.split(/\s+/).includes("2"));
  assert.ok(one("Service.User") && one("Service.User") !== "root");
  for (
    const [key, value] of [
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["CapabilityBoundingSet", ""],
      ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
    ]
  ) {
    assert.equal(one(`Service.${key}`), value, key);
  }
  // V8 writes the machine code it compiles: this option would stop Shark at once.
  assert.notEqual(one("Service.MemoryDenyWriteExecute"), "yes");
});

/** Runs a `/bin/sh -c SCRIPT` of the unit as systemd would (`$$` is a `$`), with this test's Deno. */
async function unitShell(script: string, deno: string) {
  const output = await new Deno.Command("/bin/sh", {
    args: ["-c", script.replaceAll("$$", "$").replaceAll(deno, Deno.execPath())],
    stdin: "null",
  }).output();
  return { code: output.code, stderr: decode(output.stderr) };
}

Deno.test("shark.service refuses to start on a Deno other than .deno-version's, before the config check", async () => {
  const unit = await unitFile();
  const deno = unit.get("Service.ExecStart")![0].split(/\s+/)[0];
  const [versionCheck, configCheck, ...more] = unit.get("Service.ExecStartPre")!;
  assert.deepEqual(more, []);
  assert.ok(configCheck.endsWith(" --check"), configCheck);
  const script = versionCheck.match(/^\/bin\/sh -c '([^']*)'$/)?.[1] ?? "";
  assert.ok(script.includes(deno), `the first ExecStartPre checks ${deno}: ${versionCheck}`);
  const asWritten = await unitShell(script, deno);
  assert.equal(asWritten.code === 0, Deno.version.deno === PINNED_DENO, asWritten.stderr);
  const accepting = await unitShell(script.replaceAll(PINNED_DENO, Deno.version.deno), deno);
  assert.equal(accepting.code, 0, accepting.stderr);
  const refusing = await unitShell(script.replaceAll(PINNED_DENO, "0.0.0"), deno);
  assert.equal(refusing.code, 2, "exit code 2: restarting will not fix it");
  assert.match(
    refusing.stderr,
    new RegExp(`needs Deno 0\\.0\\.0 .* is ${Deno.version.deno}$`, "m"),
  );
});

Deno.test({
  name: "shark.service: systemd's own parser accepts it",
  ignore: noSystemdAnalyze,
}, async () => {
  const unit = await read("deploy/shark.service");
  const deno = (await unitFile()).get("Service.ExecStart")![0].split(/\s+/)[0];
  await using directory = await tempDir("shark-unit-");
  // verify wants every command to exist: this test's Deno stands in for the host's.
  await Deno.writeTextFile(
    `${directory.path}/shark.service`,
    unit.replaceAll(deno, Deno.execPath()),
  );
  const output = await new Deno.Command("systemd-analyze", {
    args: ["verify", `${directory.path}/shark.service`],
    stdin: "null",
  }).output();
  assert.ok(output.success, decode(output.stdout) + decode(output.stderr));
});

Deno.test("one Deno version: .deno-version, which .ci/run installs and every file naming a Deno agrees with", async () => {
  assert.match(PINNED_DENO, /^\d+\.\d+\.\d+$/);
  const readme = await read("README.md");
  const files: [string, string, number][] = [
    // name, text, how many times it names a Deno version at least
    ["README.md's first screen", readme.slice(0, readme.indexOf("\n## ")), 5],
    ["deploy/README.md", await read("deploy/README.md"), 1],
    ["Dockerfile", await read("Dockerfile"), 1],
    ["deploy/shark.service", await read("deploy/shark.service"), 1],
    ["deno.json", await read("deno.json"), 0],
  ];
  for (const [name, text, least] of files) {
    const named = [...text.matchAll(/\bdeno(?:@|:| )v?(\d+\.\d+\.\d+)/gi)].map((match) => match[1]);
    assert.ok(named.length >= least, `${name} names the Deno version ${least} times or more`);
    assert.deepEqual(named.filter((version) => version !== PINNED_DENO), [], name);
  }
  const ci = await read(".ci/run");
  assert.match(ci, /"\$\(cat \.deno-version\)"/, ".ci/run reads .deno-version");
  assert.equal(ci.match(/\d+\.\d+\.\d+/), null, ".ci/run names no version of its own");
  assert.doesNotMatch(ci, /^\s*deno\s/m, ".ci/run runs no `deno` from PATH, only npx's");
});

/** Every string of the dashboard that Prometheus evaluates. */
function queries(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) { for (const item of node) queries(item, out); }
  else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (typeof value === "string" && ["expr", "query", "definition"].includes(key)) {
        out.push(value);
      } else queries(value, out);
    }
  }
  return out;
}

Deno.test("the Grafana dashboard queries only metrics a real Shark exposes, and the ones an operator needs", async () => {
  const dashboard = JSON.parse(await read("deploy/grafana-dashboard.json"));
  const shark = SharkProcess.spawn(["--port", "0"], {
    SHARK_CONFIG: JSON.stringify({ metrics: { prometheus: { port: 0 } } }),
  });
  let exposition: string;
  try {
    const line = await shark.waitForLog((line) => String(line.message).startsWith("metrics on"));
    const response = await fetch(`http://127.0.0.1:${line.properties?.port}/metrics`);
    exposition = await response.text();
  } finally {
    shark.child.kill("SIGTERM");
    await shark.exit();
  }
  const types = new Map(
    [...exposition.matchAll(/^# TYPE (\w+) (\w+)$/gm)].map(([, name, type]) => [name, type]),
  );
  const exposed = (name: string) => {
    const histogram = name.match(/^(\w+)_(bucket|sum|count)$/);
    return types.has(name) || (histogram !== null && types.get(histogram[1]) === "histogram");
  };
  const used = new Set(queries(dashboard).flatMap((text) => text.match(/\bshark_\w+/g) ?? []));
  assert.deepEqual([...used].filter((name) => !exposed(name)), [], "metrics Shark does not expose");
  for (
    const needed of [
      "shark_ready",
      "shark_connections_open",
      "shark_events_total",
      "shark_messages_delivered_total",
      "shark_messages_dropped_total",
      "shark_fanout_queue",
      "shark_fanout_queue_bytes",
      "shark_limited_total",
      "shark_callback_duration_seconds_bucket",
    ]
  ) {
    assert.ok(used.has(needed), `the dashboard shows ${needed}`);
  }
  const variables = dashboard.templating.list as { name: string; type: string }[];
  assert.ok(
    variables.some((variable) => variable.name === "datasource" && variable.type === "datasource"),
  );
  const panels = dashboard.panels as {
    id: number;
    gridPos: unknown;
    datasource: { uid: string };
  }[];
  assert.equal(
    new Set(panels.map((panel) => panel.id)).size,
    panels.length,
    "panel ids are unique",
  );
  for (const panel of panels) {
    assert.ok(panel.gridPos, `panel ${panel.id} has a position`);
    assert.equal(panel.datasource.uid, "${datasource}", `panel ${panel.id} uses the chosen source`);
  }
});

Deno.test("compose.cluster.yaml: a Redis Cluster of six nodes joined by redis-init, two Shark nodes on its seeds in sharded mode with a valid configuration", async () => {
  const compose = parseYaml(await read("deploy/compose.cluster.yaml"), { merge: true });
  const services = compose.services as Record<string, Record<string, unknown>>;
  const redisNodes = Object.keys(services).filter((name) => /^redis-\d$/.test(name));
  assert.equal(redisNodes.length, 6);
  for (const name of redisNodes) {
    assert.ok((services[name].command as string[]).includes("--cluster-enabled"), name);
  }
  assert.match(
    (services["redis-init"].entrypoint as string[]).join(" "),
    /--cluster create .*--cluster-replicas 1 --cluster-yes/,
  );
  const config = loadConfig(
    JSON.parse(await read("deploy/shark.cluster.json")),
    () => "a secret of 16 characters or more",
  );
  assert.equal(config.pubsub.redis.sharded, true);
  for (const seed of config.pubsub.redis.cluster ?? []) {
    assert.ok(services[new URL(seed).hostname], `the seed ${seed} is a service`);
  }
  const image = await imageCommand();
  const nodes = Object.entries(services).filter(([, service]) => service.build);
  assert.equal(nodes.length, 2);
  for (const [name, node] of nodes) {
    const { permissions, args } = splitCommand(node.command as string[]);
    assert.deepEqual(permissions, image.permissions, name);
    const local = args.map((arg) =>
      arg === "/etc/shark/shark.json" ? "deploy/shark.cluster.json" : arg
    );
    const env = { SHARK_PUBLISH_SECRET: "a secret of 16 characters or more" };
    assert.match(await check(permissions, local, env), /configuration is valid/);
    assert.deepEqual(node.depends_on, {
      "redis-init": { condition: "service_completed_successfully" },
    });
  }
});
