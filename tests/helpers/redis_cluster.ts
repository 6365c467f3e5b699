/**
 * A real local Redis Cluster for the cluster tests and the benchmarks: three
 * primaries and three replicas of `redis-server` on free loopback ports,
 * joined by `redis-cli --cluster create --cluster-replicas 1`, ready once
 * every node reports `cluster_state:ok`. A short `cluster-node-timeout`
 * keeps failovers quick. Nodes can be killed, frozen (SIGSTOP), thawed and
 * failed over; disposing of the cluster kills every node and removes its
 * directory.
 *
 * @module
 */
import { freePort } from "./loopback.ts";
import { RedisServer } from "./redis_server.ts";
import { tempDir, type TempPath } from "./temp.ts";
import { redisAvailable } from "./redis_server.ts";
import { delay, waitUntil } from "./wait.ts";

/** How long the cluster may take to report `cluster_state:ok` everywhere. */
const READY_TIMEOUT_MS = 20_000;

/**
 * Whether `redis-server` and `redis-cli` are installed (the cluster tests are
 * skipped loudly without them).
 */
export const clusterAvailable: () => Promise<boolean> = redisAvailable;

/** How a {@link RedisCluster} is run. */
export interface RedisClusterOptions {
  /** Primaries (3 by default); each gets one replica. */
  readonly primaries?: number;
  /** `cluster-node-timeout` in ms (1000 by default): a failover takes about twice this. */
  readonly nodeTimeoutMs?: number;
  /** More `redis-server` arguments for every node. */
  readonly args?: readonly string[];
  /** Starts a node's command line (the benchmarks pin it to a CPU). */
  readonly spawn?: (command: readonly string[]) => Deno.ChildProcess;
}

/** One node of the cluster as `CLUSTER NODES` describes it. */
export interface ClusterNodeInfo {
  readonly id: string;
  readonly port: number;
  readonly primary: boolean;
  /** The primary's id, for a replica. */
  readonly primaryId: string | undefined;
  readonly failed: boolean;
  /** Slot ranges `[from, to]` served, for a primary. */
  readonly slots: readonly (readonly [number, number])[];
}

/** A local Redis Cluster this test owns. */
export class RedisCluster {
  /** Every node, in port order of start; primaries and replicas may swap roles. */
  readonly nodes: readonly RedisServer[];
  readonly #dir: TempPath;

  private constructor(nodes: RedisServer[], dir: TempPath) {
    this.nodes = nodes;
    this.#dir = dir;
  }

  /** Starts the nodes, creates the cluster and waits for `cluster_state:ok` on each. */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const dir = await tempDir("shark-cluster-");
    const count = (options.primaries ?? 3) * 2;
    const nodes: RedisServer[] = [];
    const cluster = new RedisCluster(nodes, dir);
    try {
      for (let index = 0; index < count; index++) {
        const nodeDir = `${dir.path}/${index}`;
        await Deno.mkdir(nodeDir);
        nodes.push(await startNode(nodeDir, options));
      }
      const created = await nodes[0].cli(
        "--cluster",
        "create",
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        "--cluster-replicas",
        "1",
        "--cluster-yes",
      );
      if (created.code !== 0 || !created.stdout.includes("[OK] All 16384 slots covered")) {
        throw new Error(`redis-cli --cluster create failed: ${created.stdout} ${created.stderr}`);
      }
      await cluster.waitHealthy();
      return cluster;
    } catch (error) {
      await cluster[Symbol.asyncDispose]();
      throw error;
    }
  }

  /** The seed URLs of every node (`redis://127.0.0.1:PORT/0`). */
  urls(): string[] {
    return this.nodes.map((node) => node.url());
  }

  /** The node listening on `port`. */
  node(port: number): RedisServer {
    const node = this.nodes.find((each) => each.port === port);
    if (!node) throw new Error(`no cluster node on port ${port}`);
    return node;
  }

  /** `CLUSTER NODES` as seen by a running, unfrozen node (`via`, or the first that answers). */
  async topology(via?: RedisServer): Promise<ClusterNodeInfo[]> {
    for (const node of via ? [via] : this.nodes) {
      if (!node.running) continue;
      const result = await node.cli("CLUSTER", "NODES");
      if (result.code !== 0 || result.stdout === "") continue;
      return result.stdout.split("\n").map(parseNode);
    }
    throw new Error("no cluster node answers CLUSTER NODES");
  }

  /** The node serving `slot` as its primary, by the topology `via` sees. */
  async ownerOf(slot: number, via?: RedisServer): Promise<RedisServer> {
    const owner = (await this.topology(via)).find((info) =>
      info.primary && !info.failed &&
      info.slots.some(([from, to]) => from <= slot && slot <= to)
    );
    if (!owner) throw new Error(`no primary serves slot ${slot}`);
    return this.node(owner.port);
  }

  /** A replica of the primary `primary`. */
  async replicaOf(primary: RedisServer): Promise<RedisServer> {
    const nodes = await this.topology();
    const id = nodes.find((info) => info.port === primary.port)?.id;
    const replica = nodes.find((info) => !info.primary && info.primaryId === id && !info.failed);
    if (!replica) throw new Error(`no replica of ${primary.port}`);
    return this.node(replica.port);
  }

  /** The slot `CLUSTER KEYSLOT` gives `name`. */
  async keySlot(name: string): Promise<number> {
    const result = await this.nodes.find((node) => node.running)!.cli("CLUSTER", "KEYSLOT", name);
    return Number(result.stdout);
  }

  /** Freezes a node (SIGSTOP): it keeps its connections but answers nothing. */
  freeze(node: RedisServer): void {
    Deno.kill(node.pid!, "SIGSTOP");
  }

  /** Thaws a frozen node (SIGCONT). */
  thaw(node: RedisServer): void {
    Deno.kill(node.pid!, "SIGCONT");
  }

  /** Kills a node (SIGKILL). */
  kill(node: RedisServer): Promise<void> {
    return node.stop({ kill: true });
  }

  /** `CLUSTER FAILOVER` on a replica: it and its primary swap roles without loss. */
  async failover(replica: RedisServer): Promise<void> {
    const result = await replica.cli("CLUSTER", "FAILOVER");
    if (result.stdout !== "OK") throw new Error(`CLUSTER FAILOVER failed: ${result.stdout}`);
    await waitUntil(
      async () =>
        (await this.topology(replica)).find((info) => info.port === replica.port)?.primary,
      READY_TIMEOUT_MS,
      `replica ${replica.port} promoted`,
    );
  }

  /**
   * Waits until every running node reports `cluster_state:ok` and every
   * running replica's link to its primary is up (a replica still syncing
   * would lose the writes of a failover).
   */
  async waitHealthy(ms = READY_TIMEOUT_MS): Promise<void> {
    await waitUntil(
      async () => {
        for (const node of this.nodes) {
          if (!node.running) continue;
          const info = await node.cli("CLUSTER", "INFO");
          if (!info.stdout.includes("cluster_state:ok")) return false;
          const replication = (await node.cli("INFO", "replication")).stdout;
          if (
            replication.includes("role:slave") && !replication.includes("master_link_status:up")
          ) {
            return false;
          }
        }
        return true;
      },
      ms,
      "cluster_state:ok and replicas in sync on every node",
    );
  }

  /**
   * Moves `slot` from its owner to `target` (`CLUSTER SETSLOT` IMPORTING and
   * MIGRATING, `MIGRATE` of its keys, then `SETSLOT NODE` everywhere).
   */
  async migrateSlot(slot: number, target: RedisServer): Promise<void> {
    const source = await this.ownerOf(slot);
    const nodes = await this.topology();
    const idOf = (node: RedisServer) => nodes.find((info) => info.port === node.port)!.id;
    const must = async (node: RedisServer, ...args: string[]) => {
      const result = await node.cli(...args);
      if (result.code !== 0 || result.stdout.startsWith("ERR")) {
        throw new Error(`${args.join(" ")} on ${node.port}: ${result.stdout} ${result.stderr}`);
      }
      return result.stdout;
    };
    await must(target, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", idOf(source));
    await must(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", idOf(target));
    for (;;) {
      const keys = (await must(source, "CLUSTER", "GETKEYSINSLOT", String(slot), "100"))
        .split("\n").filter((key) => key !== "");
      if (keys.length === 0) break;
      await must(
        source,
        "MIGRATE",
        "127.0.0.1",
        String(target.port),
        "",
        "0",
        "5000",
        "KEYS",
        ...keys,
      );
    }
    for (const node of this.nodes.filter((each) => each.running)) {
      const info = nodes.find((each) => each.port === node.port);
      if (info?.primary) await must(node, "CLUSTER", "SETSLOT", String(slot), "NODE", idOf(target));
    }
    await delay(50);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const node of this.nodes) {
      try {
        if (node.pid !== undefined) Deno.kill(node.pid, "SIGCONT");
      } catch {
        // exited already
      }
    }
    await Promise.all(this.nodes.map((node) => node.stop({ kill: true })));
    await this.#dir[Symbol.asyncDispose]();
  }
}

/** How many times a node is started on fresh ports before the cluster gives up. */
const NODE_START_TRIES = 3;

/**
 * One cluster node in `nodeDir`. A free port may be taken by the time the
 * server binds it (by another test's process): such a start is tried again
 * on fresh ports.
 */
async function startNode(nodeDir: string, options: RedisClusterOptions): Promise<RedisServer> {
  for (let attempt = 1;; attempt++) {
    try {
      return await RedisServer.start({
        spawn: options.spawn,
        args: [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `${nodeDir}/nodes.conf`,
          // The bus port defaults to port + 10000, past 65535 for a high free port.
          "--cluster-port",
          String(freePort()),
          "--cluster-node-timeout",
          String(options.nodeTimeoutMs ?? 1000),
          // A replica fails over however long ago it last heard its primary.
          "--cluster-replica-validity-factor",
          "0",
          "--dir",
          nodeDir,
          ...(options.args ?? []),
        ],
      });
    } catch (error) {
      if (attempt >= NODE_START_TRIES) throw error;
    }
  }
}

function parseNode(line: string): ClusterNodeInfo {
  const [id, address, flags, primaryId, , , , , ...slots] = line.split(" ");
  return {
    id,
    port: Number(address.split("@")[0].split(":")[1]),
    primary: flags.includes("master"),
    primaryId: primaryId === "-" ? undefined : primaryId,
    failed: flags.includes("fail") && !flags.includes("fail?"),
    slots: slots.filter((slot) => !slot.startsWith("[")).map((slot) => {
      const [from, to = from] = slot.split("-").map(Number);
      return [from, to] as const;
    }),
  };
}
