-- Shark presence in Redis (SPEC section 12): each call is one atomic step, and a
-- join or leave is PUBLISHed on the topic's channel in the same step as the change,
-- so that every node sees joins, leaves and messages of a topic in one order.
-- Shark loads this script at start and runs it with EVALSHA (EVAL when the server's
-- script cache lost it). Needs Redis 5 or later (effects replication after TIME).
--
-- KEYS[1]  members  a hash: client id -> member JSON {"client":..,"user":..,"info":{..}}
-- KEYS[2]  nodes    a sorted set: node id -> deadline (Redis TIME in ms), after which
--                   the node counts as dead and its members are removed
-- KEYS[3]  owners   a sorted set, every score 0: "NODE:CLIENT" per member, so that
--                   the members of one node are one lexicographic range
--   The keys are those of the channel, in its Redis Cluster slot
--   (adapters/redis_keys.ts: slotKey(CHANNEL, ":presence"), ":presence:nodes",
--   ":presence:owners"); every key the script touches is one of these three.
-- ARGV[1]  operation: "add", "remove", "read" or "refresh"
-- ARGV[2]  CHANNEL, <channel_prefix><SERVICE.TOPIC>, where joins and leaves go
-- ARGV[3]  the calling node's id (letters, digits and "-": a UUID)
-- ARGV[4]  ttl: seconds (> 0, fractions allowed) a node's members outlive its last
--          add or refresh
-- ARGV[5]  "1" to PUBLISH joins and leaves, "2" to SPUBLISH them (sharded pub/sub,
--          Redis 7 or later), "0" not to
-- ARGV[6]  the topic SERVICE.TOPIC as a JSON string (with its quotes)
--
-- add      ARGV[7] client, ARGV[8] member JSON: the member joins (its join
--          published when it was not a member yet); the node's deadline is now + ttl;
--          the keys expire 2 x ttl from now.                      Returns 1.
-- remove   ARGV[7] client: the member leaves.      Returns 1, or 0 when it was not a
--          member (so exactly one call, the one that removed it, publishes its leave).
-- read     removes the members of every other node past its deadline, each with its
--          leave.                                   Returns every member JSON.
-- refresh  the node's deadline is now + ttl and the keys expire 2 x ttl from now, so
--          that a topic nobody refreshes vanishes; then as read. Returns how many
--          members it removed, and 1 when this node had no deadline any more (another
--          node took it for dead and removed its members: it must add them again), else 0.
-- Costs: add, remove and refresh are O(log N) plus O(members removed); only read
-- returns every member. A join or leave is
-- {"shark.presence":"join","subscription":TOPIC,"member":MEMBER}
-- (src/presence/presence_payload.ts builds the same bytes).

local members, nodes, owners = KEYS[1], KEYS[2], KEYS[3]
local operation, channel, node = ARGV[1], ARGV[2], ARGV[3]
local ttl, join_leave, topic = tonumber(ARGV[4]), ARGV[5] ~= "0", ARGV[6]
local publish = ARGV[5] == "2" and "SPUBLISH" or "PUBLISH"

if not members or not nodes or not owners then
  return redis.error_reply("shark presence: KEYS must be members, nodes and owners")
end
if not channel or not node or not string.find(node, "^[%w%-]+$") then
  return redis.error_reply("shark presence: ARGV[3] must be a node id (letters, digits, -)")
end
if not ttl or ttl <= 0 then
  return redis.error_reply("shark presence: ttl (ARGV[4]) must be a number of seconds > 0")
end
if not topic or string.sub(topic, 1, 1) ~= '"' then
  return redis.error_reply("shark presence: ARGV[6] must be the topic as a JSON string")
end

local ttl_ms = math.ceil(ttl * 1000)
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function announce(kind, member)
  if not join_leave then return end
  redis.call(publish, channel,
    '{"shark.presence":"' .. kind .. '","subscription":' .. topic .. ',"member":' .. member .. "}")
end

-- Removes the members of every other node whose deadline has passed, each with its
-- leave, and forgets those nodes. A member that another call removed already is
-- skipped: its leave was published then.
local function sweep()
  local removed = 0
  for _, dead in ipairs(redis.call("ZRANGEBYSCORE", nodes, "-inf", "(" .. now)) do
    if dead ~= node then
      local first, last = "[" .. dead .. ":", "(" .. dead .. ";"
      for _, owned in ipairs(redis.call("ZRANGEBYLEX", owners, first, last)) do
        local client = string.sub(owned, #dead + 2)
        local member = redis.call("HGET", members, client)
        if member then
          redis.call("HDEL", members, client)
          announce("leave", member)
          removed = removed + 1
        end
      end
      redis.call("ZREMRANGEBYLEX", owners, first, last)
      redis.call("ZREM", nodes, dead)
    end
  end
  return removed
end

-- This node is alive for another ttl; the topic's keys for another 2 x ttl.
local function keep()
  redis.call("ZADD", nodes, now + ttl_ms, node)
  redis.call("PEXPIRE", members, 2 * ttl_ms)
  redis.call("PEXPIRE", nodes, 2 * ttl_ms)
  redis.call("PEXPIRE", owners, 2 * ttl_ms)
end

if operation == "add" then
  local client, member = ARGV[7], ARGV[8]
  if not client or client == "" or not member or string.sub(member, 1, 10) ~= '{"client":' then
    return redis.error_reply("shark presence: add needs a client (ARGV[7]) and its member JSON (ARGV[8])")
  end
  redis.call("ZADD", owners, 0, node .. ":" .. client)
  if redis.call("HSET", members, client, member) == 1 then announce("join", member) end
  keep()
  return 1
end

if operation == "remove" then
  local client = ARGV[7]
  if not client or client == "" then
    return redis.error_reply("shark presence: remove needs a client (ARGV[7])")
  end
  redis.call("ZREM", owners, node .. ":" .. client)
  local member = redis.call("HGET", members, client)
  if not member then return 0 end
  redis.call("HDEL", members, client)
  announce("leave", member)
  return 1
end

if operation == "read" then
  sweep()
  return redis.call("HVALS", members)
end

if operation == "refresh" then
  local lapsed = redis.call("ZSCORE", nodes, node) == false
  keep()
  return { sweep(), lapsed and 1 or 0 }
end

return redis.error_reply("shark presence: ARGV[1] must be add, remove, read or refresh")
