/**
 * Process plumbing for the benchmarks: CPU time and memory from `/proc`,
 * pinned child processes with the fd limit raised.
 *
 * CPU is read from `/proc/PID/stat` (utime + stime, plus cutime + cstime so
 * that reaped children still count) summed over the process and its
 * descendants: a server that runs its isolates as child processes is
 * measured whole, one that runs them as threads is measured by its own line.
 *
 * @module
 */

import { peakRssKiB, rssOfKiB } from "../tests/helpers/proc_memory.ts";

export { peakRssKiB, rssOfKiB };

/** CPU time of a process tree, in milliseconds. */
export async function cpuMs(pid: number): Promise<number> {
  const ticks = await clockTicks();
  let total = 0;
  for (const stat of treeStats(pid)) total += stat.ticks;
  return total * 1000 / ticks;
}

/** Resident memory of a process tree now, in KiB. */
export function rssKiB(pid: number): number {
  return rssOfKiB(treePids(pid));
}

/**
 * Busy, stolen and total time of every CPU together, in ticks (`/proc/stat`,
 * first line). Steal is time the hypervisor gave to other machines: on a
 * shared host it slows everything down without showing in any process.
 */
export function machineTicks(): { busy: number; steal: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n", 1)[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.split(/\s+/).slice(1, 9)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, steal, total: busy + idle + iowait };
}

/**
 * Connections the kernel refused machine-wide so far because a listening
 * socket's accept queue was full (`TcpExt ListenOverflows`): each one is a
 * SYN that its client sends again a second later.
 */
export function listenOverflows(): number {
  const lines = Deno.readTextFileSync("/proc/net/netstat").split("\n");
  const names = lines.find((line) => line.startsWith("TcpExt:"))!.split(/\s+/);
  const values = lines.filter((line) => line.startsWith("TcpExt:"))[1].split(/\s+/);
  return Number(values[names.indexOf("ListenOverflows")]);
}

/**
 * The share of one core that the whole machine was busy, sampled over
 * `ms`: a check that nothing else runs before a measurement starts.
 */
export async function machineBusyPct(ms: number): Promise<number> {
  const before = machineTicks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = machineTicks();
  const cores = navigator.hardwareConcurrency;
  return Math.round((after.busy - before.busy) / (after.total - before.total) * cores * 1000) / 10;
}

/** The pids of a process and its descendants (those alive now). */
export function treePids(pid: number): number[] {
  return treeStats(pid).map((stat) => stat.pid);
}

interface Stat {
  readonly pid: number;
  readonly ppid: number;
  readonly ticks: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: fields start after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  return { pid, ppid: Number(fields[1]), ticks: utime + stime + cutime + cstime };
}

function treeStats(root: number): Stat[] {
  const rootStat = readStat(root);
  if (!rootStat) return [];
  const children = new Map<number, Stat[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid === root) continue;
    const stat = readStat(pid);
    if (!stat) continue;
    const siblings = children.get(stat.ppid);
    if (siblings) siblings.push(stat);
    else children.set(stat.ppid, [stat]);
  }
  const tree = [rootStat];
  for (let index = 0; index < tree.length; index++) {
    tree.push(...children.get(tree[index].pid) ?? []);
  }
  return tree;
}

let ticksPerSecond: Promise<number> | undefined;

/** `getconf CLK_TCK`: the unit of the times in `/proc/PID/stat`. */
export function clockTicks(): Promise<number> {
  ticksPerSecond ??= new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" })
    .output()
    .then((output) => Number(new TextDecoder().decode(output.stdout).trim()) || 100)
    .catch(() => 100);
  return ticksPerSecond;
}

/** The per-process fd hard limit, which the launcher raises the soft limit to. */
export async function fdHardLimit(): Promise<number> {
  const output = await new Deno.Command("bash", {
    args: ["-c", "ulimit -Hn"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}

/** How to start a {@link Child}. */
export interface ChildOptions {
  /** A short name for messages. */
  readonly name: string;
  /** The command and its arguments. */
  readonly command: readonly string[];
  /** CPUs to pin to (`taskset -c`), e.g. `"0"` or `"0,1"`. */
  readonly cpus: string;
  /** The working directory. */
  readonly cwd?: string;
  /** Whether stdout is collected (else discarded). */
  readonly stdout?: boolean;
  /** Whether stderr lines are also echoed to this process's stderr, as progress. */
  readonly echo?: boolean;
}

/** How many stderr lines a child keeps for error messages. */
const STDERR_LINES = 40;

/**
 * A child process pinned to CPUs with its fd soft limit raised to the hard
 * limit. Every child is registered so that {@link killAll} can end it.
 */
export class Child {
  /** Children started and not yet reaped. */
  static readonly running: Set<Child> = new Set();
  /** The name given in {@link ChildOptions}. */
  readonly name: string;
  /** The running `taskset` → `bash` → program process (one pid: each execs the next). */
  readonly process: Deno.ChildProcess;
  /** The last lines of stderr. */
  readonly stderr: string[] = [];
  /** stdout, when collected. */
  readonly stdout: Promise<string>;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #echo: boolean;

  /** Starts the child at once. */
  constructor(options: ChildOptions) {
    this.name = options.name;
    this.#echo = options.echo ?? false;
    // taskset and bash exec the command: the child's pid is the program's pid.
    this.process = new Deno.Command("taskset", {
      args: [
        "-c",
        options.cpus,
        "bash",
        "-c",
        'ulimit -n "$(ulimit -Hn)" && exec "$@"',
        "bench-launch",
        ...options.command,
      ],
      cwd: options.cwd,
      stdin: "null",
      stdout: options.stdout ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    Child.running.add(this);
    this.stdout = options.stdout ? new Response(this.process.stdout).text() : Promise.resolve("");
    const drained = this.#drain();
    this.status = this.process.status.then(async (status) => {
      await drained;
      Child.running.delete(this);
      return status;
    });
  }

  /** The child's pid. */
  get pid(): number {
    return this.process.pid;
  }

  /** Its last stderr lines, for an error message. */
  tail(lines = 12): string {
    return this.stderr.slice(-lines).join("\n");
  }

  /** Sends SIGTERM, then SIGKILL when it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!Child.running.has(this)) return;
    this.#signal("SIGTERM");
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.status;
    clearTimeout(timer);
  }

  /** SIGKILLs the child and its descendants at once. */
  kill(): void {
    const descendants = treePids(this.pid).slice(1);
    this.#signal("SIGKILL");
    for (const pid of descendants) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already exited.
      }
    }
  }

  /** SIGKILLs every child still running (for failures and interrupts). */
  static killAll(): void {
    for (const child of Child.running) child.kill();
  }

  #signal(signal: Deno.Signal): void {
    try {
      this.process.kill(signal);
    } catch {
      // Already exited.
    }
  }

  async #drain(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.process.stderr.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        this.stderr.push(buffer.slice(0, newline));
        if (this.#echo) console.error(buffer.slice(0, newline));
        if (this.stderr.length > STDERR_LINES) this.stderr.shift();
        buffer = buffer.slice(newline + 1);
      }
    }
    if (buffer) this.stderr.push(buffer);
  }
}
