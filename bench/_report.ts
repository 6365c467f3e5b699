/**
 * How `deno task bench` reports: the results as a Markdown table, the ratios
 * of Shark against the baseline next to the targets, and a JSON
 * lines file per run under `bench/results/`.
 *
 * @module
 */
import type { Result } from "./loadgen.ts";

const number = (value: unknown, unit = "") =>
  typeof value === "number" ? `${value.toLocaleString("en-US")}${unit}` : "";

/** The headline figure of a result, by scenario. */
function figure(result: Result): string {
  if (result.skipped) return `skipped: ${result.skipped}`;
  switch (result.scenario) {
    case "idle":
      return `${number(result.connected)} conns, ${number(result.rss_kib_per_conn)} KiB/conn, ` +
        `${number(result.connect_s)} s to connect+subscribe`;
    case "subrate":
      return `${number(result.per_s)} auth+subscribe/s`;
    case "storm":
      return result.variant === "connect"
        ? `${number(result.conns_per_s)} conn+subscribe/s`
        : `${number(result.caught_up_s)} s until all ${number(result.back)} back` +
          (result.replayed ? ` and ${number(result.replayed)} replayed` : "") +
          `, ${number(result.callbacks_per_s)} callbacks/s` +
          (result.complete === false ? " (INCOMPLETE)" : "");
    case "recovery":
      return `${number(result.caught_up_s)} s to catch up, ${number(result.recovered)} recovered` +
        (result.complete === false ? " (INCOMPLETE)" : "");
    default:
      return `${number(result.msgs_per_s)} msg/s` +
        (result.complete === false ? " (INCOMPLETE)" : "") +
        (result.isolate_connections
          ? `, connections per isolate ${result.isolate_connections}`
          : "");
  }
}

function latency(result: Result): string {
  if (typeof result.bystander_p99_ms === "number") {
    return `bystander p50 ${result.bystander_p50_ms} / p90 ${result.bystander_p90_ms} / p99 ${result.bystander_p99_ms} / max ` +
      `${result.bystander_max_ms} ms (quiet p99 ${result.bystander_quiet_p99_ms})`;
  }
  const parts = [];
  if (typeof result.first_ms === "number") parts.push(`first ${result.first_ms}`);
  if (typeof result.p50_ms === "number") parts.push(`p50 ${result.p50_ms}`);
  if (typeof result.p90_ms === "number") parts.push(`p90 ${result.p90_ms}`);
  if (typeof result.p99_ms === "number") parts.push(`p99 ${result.p99_ms}`);
  if (typeof result.max_ms === "number") parts.push(`max ${result.max_ms}`);
  return parts.length ? `${parts.join(" / ")} ms` : "";
}

/** The results as a Markdown table. */
export function table(results: Result[]): string {
  const header = [
    "scenario",
    "variant",
    "server",
    "result",
    "latency",
    "server CPU µs/msg (op)",
    "server CPU %",
    "gen CPU %",
    "redis+cb CPU %",
    "others (steal) CPU %",
    "peak RSS",
  ];
  const rows = results.map((result) => [
    String(result.scenario),
    String(result.variant ?? ""),
    String(result.server),
    figure(result),
    latency(result),
    number(result.server_cpu_us_per_msg ?? result.server_cpu_us_per_op),
    number(result.server_cpu_pct),
    number(result.gen_cpu_pct),
    number(result.helpers_cpu_pct),
    typeof result.others_cpu_pct === "number"
      ? `${result.others_cpu_pct} (${result.steal_pct ?? 0})`
      : "",
    number(result.peak_rss_mib ?? result.rss_after_mib, " MiB"),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(" | ")} |`;
  return [
    line(header),
    `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

export interface Ratio {
  readonly name: string;
  readonly value: number | null;
  readonly target: string;
  readonly pass: boolean | null;
}

/** Shark/baseline (or 2 workers / 1 isolate) ratios against the targets. */
export function ratios(results: Result[]): Ratio[] {
  const find = (scenario: string, variant: string, server: string) =>
    results.find((result) =>
      result.scenario === scenario && result.variant === variant && result.server === server &&
      !result.skipped
    );
  const ratio = (
    name: string,
    scenario: string,
    variant: string,
    field: string,
    target: string,
    pass: (value: number) => boolean,
    servers: [string, string] = ["shark", "baseline"],
    variants: [string, string] = [variant, variant],
  ): Ratio => {
    const top = find(scenario, variants[0], servers[0])?.[field];
    const bottom = find(scenario, variants[1], servers[1])?.[field];
    const value = typeof top === "number" && typeof bottom === "number" && bottom !== 0
      ? Math.round(top / bottom * 100) / 100
      : null;
    return { name, value, target, pass: value === null ? null : pass(value) };
  };
  /** Shark's `top` variant against its `bottom` variant of one scenario, figure by figure. */
  const variantRatios = (
    scenario: string,
    top: string,
    bottom: string,
    fields: [string, string][],
  ) =>
    fields.map(([name, field]) =>
      ratio(`${scenario} ${top} ${name} (/ ${bottom})`, scenario, "", field, "report", () => true, [
        "shark",
        "shark",
      ], [top, bottom])
    );
  const subrateVariant = String(results.find((r) => r.scenario === "subrate")?.variant ?? "c200");
  return [
    ratio("fanout msg/s", "fanout", "burst", "msgs_per_s", ">= 4", (v) => v >= 4),
    ratio(
      "fanout server CPU/msg",
      "fanout",
      "burst",
      "server_cpu_us_per_msg",
      "<= 0.3",
      (v) => v <= 0.3,
    ),
    ratio("fanout window of 4 msg/s", "fanout", "window4", "msgs_per_s", ">= 1.5", (v) => v >= 1.5),
    ratio("fanout paced p99", "fanout", "paced", "p99_ms", "<= 1.0", (v) => v <= 1),
    ratio("fanout first delivery", "fanout", "burst", "first_ms", "report", () => true),
    ratio("topics msg/s", "topics", "burst", "msgs_per_s", ">= 0.8", (v) => v >= 0.8),
    ratio("idle RSS/conn", "idle", "idle", "rss_kib_per_conn", "<= 1.0", (v) => v <= 1),
    ratio("subrate /s", "subrate", subrateVariant, "per_s", ">= 1.3", (v) => v >= 1.3),
    ratio("subrate /s (÷ raw Bun)", "subrate", subrateVariant, "per_s", "report", () => true, [
      "shark",
      "bun",
    ]),
    ratio(
      "subrate server CPU/pair (÷ raw Bun)",
      "subrate",
      subrateVariant,
      "server_cpu_us_per_op",
      "report",
      () => true,
      ["shark", "bun"],
    ),
    ratio(
      "subrate server CPU/pair",
      "subrate",
      subrateVariant,
      "server_cpu_us_per_op",
      "<= 0.7",
      (v) => v <= 0.7,
    ),
    ratio(
      "parallel msg/s (2 workers / 1)",
      "parallel",
      "burst",
      "msgs_per_s",
      ">= 1.6",
      (v) => v >= 1.6,
      ["shark-2-workers", "shark-1-isolate"],
    ),
    ...["fanout", "topics"].flatMap((shape) =>
      variantRatios("history", `${shape}-history`, `${shape}-plain`, [
        ["msg/s", "msgs_per_s"],
        ["server CPU/msg", "server_cpu_us_per_msg"],
        ["redis CPU/publish", "redis_cpu_us_per_publish"],
      ])
    ),
    ...["recover-one-topic", "recover-own-topics"].flatMap((variant) =>
      variantRatios("recovery", variant, "resubscribe", [
        ["time to catch up", "caught_up_s"],
        ["server CPU", "server_cpu_ms"],
        ["redis+cb CPU", "helpers_cpu_ms"],
      ])
    ),
    ...scaleRatios(results),
    ratio("storm connect conn/s", "storm", "connect", "conns_per_s", "report", () => true),
    // The bar for the connect phase is raw Bun's, where the load generator allows it.
    ratio(
      "storm connect conn/s (÷ raw Bun)",
      "storm",
      "connect",
      "conns_per_s",
      ">= 1",
      (v) => v >= 1,
      ["shark", "bun"],
    ),
    ratio(
      "storm connect server CPU/conn (÷ raw Bun)",
      "storm",
      "connect",
      "server_cpu_us_per_op",
      "report",
      () => true,
      ["shark", "bun"],
    ),
    ratio(
      "storm resubscribe time until back (÷ raw Bun)",
      "storm",
      "resubscribe",
      "caught_up_s",
      "report",
      () => true,
      ["shark", "bun"],
    ),
    ratio(
      "storm resubscribe time until back",
      "storm",
      "resubscribe",
      "caught_up_s",
      "report",
      () => true,
    ),
    ratio(
      "storm resubscribe server CPU/client",
      "storm",
      "resubscribe",
      "server_cpu_us_per_op",
      "report",
      () => true,
    ),
    ratio(
      "storm resubscribe bystander p99",
      "storm",
      "resubscribe",
      "bystander_p99_ms",
      "report",
      () => true,
    ),
    ...variantRatios("storm", "recover", "resubscribe", [["time until caught up", "caught_up_s"]])
      .map((ratio) => ({
        ...ratio,
        target: "<= 2",
        pass: ratio.value === null ? null : ratio.value <= 2,
      })),
    ratio(
      "parallel CPU/msg (2 workers / 1)",
      "parallel",
      "burst",
      "server_cpu_us_per_msg",
      "report",
      () => true,
      ["shark-2-workers", "shark-1-isolate"],
    ),
  ];
}

/**
 * `scale`: N isolates against one (target 0.8·N where the generator has cores
 * of its own, i.e. N < cores), and one isolate against the raw baseline.
 */
function scaleRatios(results: Result[]): Ratio[] {
  const scale = results.filter((result) => result.scenario === "scale" && !result.skipped);
  const rate = (server: string) =>
    scale.find((result) => result.server === server)?.msgs_per_s as number | undefined;
  const one = rate("shark-1-isolate");
  const raw = rate("baseline");
  const cores = navigator.hardwareConcurrency;
  const list: Ratio[] = [];
  if (one !== undefined && raw !== undefined) {
    const value = Math.round(one / raw * 100) / 100;
    list.push({ name: "scale 1 isolate / raw", value, target: ">= 1.0", pass: value >= 1 });
  }
  for (const result of scale) {
    const n = Number(/^shark-(\d+)-isolates$/.exec(String(result.server))?.[1]);
    if (!n || one === undefined) continue;
    const value = Math.round(Number(result.msgs_per_s) / one * 100) / 100;
    const spare = n < cores;
    list.push({
      name: `scale ${n} isolates / 1`,
      value,
      target: spare ? `>= ${0.8 * n}` : "report",
      pass: value >= 0.8 * n,
    });
  }
  return list;
}

export function ratioTable(list: Ratio[]): string {
  const rows = list.map((ratio) =>
    `| ${ratio.name} | ${ratio.value ?? "n/a"} | ${ratio.target} | ${
      ratio.pass === null ? "n/a" : ratio.target === "report" ? "—" : ratio.pass ? "yes" : "NO"
    } |`
  );
  return ["| ratio | value | target | met |", "|---|---|---|---|", ...rows].join("\n");
}

/** Writes the machine facts, the results and the ratios to `directory`, one JSON line each. */
export async function saveResults(
  directory: string,
  facts: Record<string, unknown>,
  results: Result[],
): Promise<string> {
  await Deno.mkdir(directory, { recursive: true });
  const path = `${directory}/${String(facts.date).replaceAll(":", "-")}.jsonl`;
  const lines = [{ machine: facts }, ...results, { ratios: ratios(results) }];
  await Deno.writeTextFile(path, lines.map((line) => JSON.stringify(line)).join("\n") + "\n");
  return path;
}
