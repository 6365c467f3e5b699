/**
 * The demo's application service: a chat with rooms. It serves the page,
 * issues single-use tickets, and answers Shark's callbacks: it validates
 * tickets, authorizes rooms, returns a room's recent messages from
 * `before_subscribe`, and takes posts through `on_message`, storing each and
 * publishing it to the room with Shark's `POST /publish`. It never sees a
 * WebSocket.
 *
 * @module
 */

/** Where the service listens and how it reaches Shark. */
export interface ChatServiceOptions {
  /** 0 picks a free port. */
  readonly port: number;
  /** The WebSocket URL the page connects to. */
  readonly sharkUrl: string;
  /** `POST /publish` URLs of the Shark nodes, tried in order until one takes the post. */
  readonly publishUrls: readonly string[];
  /** `publish_api.secret` of those nodes. */
  readonly secret: string;
}

/** One chat message, as stored, published and shown. */
export interface ChatMessage {
  readonly id: number;
  readonly user: string;
  readonly text: string;
  readonly at: string;
}

const KEPT = 50;
const TICKET_LIFE_MS = 30_000;
const NAME = /^[A-Za-z0-9_-]{1,24}$/;
const PAGE_FILES: Record<string, [string, string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/dist/shark-client.js": ["../../dist/shark-client.js", "text/javascript; charset=utf-8"],
};

type Body = Record<string, unknown>;

function reply(body: Body, status = 200): Response {
  return Response.json(body, { status });
}

/** The room of a `chat.ROOM` subscription, or undefined for a bad name. */
function roomOf(subscription: unknown): string | undefined {
  const room = String(subscription).replace(/^chat\./, "");
  return NAME.test(room) ? room : undefined;
}

/** The chat service; `stop()` ends it. */
export class ChatService {
  readonly #options: ChatServiceOptions;
  readonly #tickets = new Map<string, { user: string; expires: number }>();
  readonly #rooms = new Map<string, ChatMessage[]>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #lastId = 0;

  constructor(options: ChatServiceOptions) {
    this.#options = options;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: options.port, onListen() {} },
      (request) => this.#handle(request),
    );
  }

  /** `http://127.0.0.1:PORT` */
  get origin(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /**
   * Stores a post and publishes it to the room's subscribers; when no Shark
   * takes it, it is still stored and shown as part of the room's state.
   */
  async post(room: string, user: string, text: string): Promise<ChatMessage> {
    const message = { id: ++this.#lastId, user, text, at: new Date().toISOString() };
    const messages = this.#rooms.get(room) ?? [];
    messages.push(message);
    this.#rooms.set(room, messages.slice(-KEPT));
    const envelope = JSON.stringify({ subscription: `chat.${room}`, data: message });
    for (const url of this.#options.publishUrls) {
      try {
        const response = await fetch(url, {
          method: "POST",
          headers: { authorization: `Bearer ${this.#options.secret}` },
          body: envelope,
        });
        await response.body?.cancel();
        if (response.ok) break;
      } catch {
        // that node is down: try the next one
      }
    }
    return message;
  }

  async stop(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    const file = PAGE_FILES[path];
    if (request.method === "GET" && file) {
      const body = await Deno.readFile(new URL(file[0], import.meta.url));
      return new Response(body, { headers: { "content-type": file[1] } });
    }
    if (request.method === "GET" && path === "/config.json") {
      return reply({ shark: this.#options.sharkUrl });
    }
    if (request.method !== "POST") return reply({ error: "Not found." }, 404);
    let body: Body;
    try {
      body = await request.json();
    } catch {
      return reply({ error: "Send JSON." }, 400);
    }
    switch (path) {
      case "/api/ticket":
        return this.#issue(body);
      case "/api/post": {
        const room = roomOf(body.room);
        const text = typeof body.text === "string" ? body.text.trim() : "";
        if (!room || !NAME.test(String(body.user)) || !text) {
          return reply({ error: "Need room, user and text." }, 400);
        }
        return reply({ message: await this.post(room, String(body.user), text) });
      }
      case "/shark/ticket":
        return this.#validate(body);
      case "/shark/authorize":
        return this.#authorize(body);
      case "/shark/subscribe": {
        const room = roomOf(body.subscription)!;
        return reply({ status: "ok", data: { room, messages: this.#rooms.get(room) ?? [] } });
      }
      case "/shark/message":
        return await this.#message(body);
    }
    return reply({ error: "Not found." }, 404);
  }

  /** The page asks for a ticket for a user name (a real app takes it from its session). */
  #issue(body: Body): Response {
    if (typeof body.user !== "string" || !NAME.test(body.user)) {
      return reply({ error: "Pick a name: letters, digits, _ and -, up to 24." }, 400);
    }
    const ticket = crypto.randomUUID();
    this.#tickets.set(ticket, { user: body.user, expires: Date.now() + TICKET_LIFE_MS });
    return reply({ ticket });
  }

  /** Shark validates a ticket: single use, short-lived; the user becomes the session's auth info. */
  #validate(body: Body): Response {
    const ticket = this.#tickets.get(String(body.ticket));
    this.#tickets.delete(String(body.ticket));
    if (!ticket || ticket.expires < Date.now()) {
      return reply({ status: "error", error: "Unknown or expired ticket." });
    }
    return reply({ status: "ok", user: ticket.user });
  }

  #authorize(body: Body): Response {
    const room = roomOf(body.subscription);
    if (!room) return reply({ status: "error", error: "No such room." });
    if (room === "staff" && body.user !== "admin") {
      return reply({ status: "error", error: "Staff only." });
    }
    return reply({ status: "ok" });
  }

  async #message(body: Body): Promise<Response> {
    const text = (body.data as Body | null)?.text;
    if (typeof text !== "string" || text.trim() === "") {
      return reply({ status: "error", error: "Say something." });
    }
    if (text.length > 500) return reply({ status: "error", error: "At most 500 characters." });
    const message = await this.post(roomOf(body.subscription)!, String(body.user), text.trim());
    return reply({ status: "ok", data: { id: message.id } });
  }
}
