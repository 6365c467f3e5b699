// The demo page: one SharkClient, one room subscription, who is in the room
// (presence), and what happens to them shown as it happens. The client is the bundle, dist/shark-client.js:
// the service serves it at /dist/shark-client.js, where this relative path
// leads in the browser as in the repository.
import { SharkClient } from "../../dist/shark-client.js";

const params = new URLSearchParams(location.search);
const user = params.get("user") ?? `guest-${Math.floor(Math.random() * 1000)}`;
const roomName = params.get("room") ?? "lobby";
const $ = (id) => document.getElementById(id);
$("user").textContent = user;
$("room").textContent = roomName;

const shown = new Set();
const time = (iso) => new Date(iso).toLocaleTimeString();

function log(text) {
  const item = document.createElement("li");
  item.textContent = text;
  item.append(Object.assign(document.createElement("time"), { textContent: time(Date.now()) }));
  $("log").append(item);
}

function setState(state, text) {
  $("state").dataset.state = state;
  $("state").textContent = text;
}

/** Shows a message once, whether it came with the room's state or live. */
function show(message) {
  if (shown.has(message.id)) return;
  shown.add(message.id);
  const item = document.createElement("li");
  item.dataset.id = message.id;
  item.append(Object.assign(document.createElement("b"), { textContent: message.user }));
  item.append(` ${message.text}`);
  item.append(Object.assign(document.createElement("time"), { textContent: time(message.at) }));
  $("messages").append(item);
}

/** A line in the chat saying who came or went. */
function note(text) {
  const item = document.createElement("li");
  item.className = "presence";
  item.textContent = text;
  item.append(Object.assign(document.createElement("time"), { textContent: time(Date.now()) }));
  $("messages").append(item);
}

/** Who is in the room: one member per connection, by client id; shown once per user. */
const members = new Map();

function showMembers() {
  const tabs = new Map();
  for (const member of members.values()) tabs.set(member.user, (tabs.get(member.user) ?? 0) + 1);
  const names = [...tabs.keys()].sort();
  $("count").textContent = names.length;
  $("members").replaceChildren(...names.map((name) => {
    const item = Object.assign(document.createElement("li"), { textContent: name });
    item.dataset.user = name;
    const notes = [name === user && "you", tabs.get(name) > 1 && `${tabs.get(name)} tabs`];
    const aside = notes.filter(Boolean).join(", ");
    if (aside) {
      item.append(
        " ",
        Object.assign(document.createElement("small"), { textContent: `(${aside})` }),
      );
    }
    return item;
  }));
}

/**
 * Reads the members afresh: on every subscribe, because joins and leaves
 * that happened while this page was disconnected were never sent to it.
 */
async function readMembers() {
  try {
    const presence = await room.presence();
    members.clear();
    for (const member of presence.members) members.set(member.client, member);
    showMembers();
  } catch (error) {
    log(`cannot tell who is here: ${error.message}`);
  }
}

const { shark } = await (await fetch("/config.json")).json();
const client = new SharkClient(shark, {
  // A fresh single-use ticket for every connection, reconnects included.
  auth: async () => {
    const response = await fetch("/api/ticket", {
      method: "POST",
      body: JSON.stringify({ user }),
    });
    const { ticket, error } = await response.json();
    if (!ticket) throw new Error(error);
    return { method: "ticket", ticket };
  },
});

client.on(
  "connecting",
  ({ attempt }) =>
    setState("connecting", attempt ? `connecting (attempt ${attempt + 1})` : "connecting"),
);
client.on("connected", ({ reconnected }) => {
  setState("connected", "connected");
  log(reconnected ? "reconnected" : "connected");
});
client.on("disconnected", ({ code, reason, reconnect, delay }) => {
  setState(reconnect ? "disconnected" : "closed", reconnect ? "reconnecting" : "closed");
  // Not in the room while disconnected; the list is read again after the reconnect.
  members.clear();
  showMembers();
  const why = `${code}${reason ? ` ${reason}` : ""}`;
  log(reconnect ? `disconnected (${why}), reconnecting in ${delay} ms` : `closed (${why})`);
});
client.on("error", ({ error }) => log(`error: ${error.message}`));

let lastOffset = 0;
const room = client.subscribe(`chat.${roomName}`, {
  onSubscribed(reply, resubscribed) {
    readMembers();
    if (reply.recovered) {
      log(`caught up: ${reply.offset - lastOffset} missed message(s) follow`);
      return;
    }
    lastOffset = reply.offset ?? 0;
    $("messages").replaceChildren();
    shown.clear();
    for (const message of reply.data.messages) show(message);
    log(resubscribed ? "fresh room state loaded" : `joined #${reply.data.room}`);
  },
  onMessage(message) {
    lastOffset = message.offset ?? lastOffset;
    show(message.data);
  },
  onJoin(member) {
    members.set(member.client, member);
    showMembers();
    note(`${member.user} joined`);
  },
  onLeave(member) {
    members.delete(member.client);
    showMembers();
    note(`${member.user} left`);
  },
  onUnsubscribed: (error) => log(`removed from the room: ${error.message}`),
  onError: (error) => log(`error: ${error.message}`),
});
room.ready.catch((error) => log(`cannot join #${roomName}: ${error.message}`));

$("post").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  try {
    await room.request({ text });
    $("text").value = "";
  } catch (error) {
    log(`not sent: ${error.message}`);
  }
});
