-- Shark topic history in Redis (SPEC section 10): each call is one atomic step.
-- Shark loads this script at start and runs it with EVALSHA; a service written in
-- another language may run the same file (EVAL, or EVALSHA after SCRIPT LOAD) to
-- publish with history. Needs Redis 5 or later (streams).
--
-- KEYS[1]  "{CHANNEL}:history"  a stream: entry "OFFSET-0" holds field "p", the
--                               positioned envelope
-- KEYS[2]  "{CHANNEL}:meta"     a hash: "epoch" and "offset" (the last one assigned)
--   CHANNEL is the pub/sub channel, <channel_prefix><subscription>; the braces make
--   it the hash tag, so both keys of a topic share the channel's Redis Cluster slot.
--   A channel with a hash tag of its own keeps it: "CHANNEL:history", "CHANNEL:meta"
--   (adapters/redis_keys.ts: slotKey; a channel with a "}" and no hash tag gets
--   ":" and four filler letters after the suffix).
-- ARGV[1]  operation: "publish", "position" or "recover"
-- ARGV[2]  CHANNEL
-- ARGV[3]  size: envelopes kept (1-10000)
-- ARGV[4]  ttl: seconds the history lives after the last publish (> 0, fractions allowed)
--
-- publish   ARGV[5] the envelope (a JSON object with "subscription" and "data"):
--           assigns the next offset, appends the envelope with "offset" and "epoch"
--           added as its last keys to the capped stream, sets the ttl on both keys,
--           PUBLISHes it to CHANNEL (SPUBLISHes it when ARGV[6] is "SPUBLISH", for
--           sharded pub/sub on Redis 7 or later).    Returns {offset, epoch}.
-- position                                           Returns {offset, epoch}.
-- recover   ARGV[5] offset, ARGV[6] epoch: the last position a client saw.
--           Returns {offset, epoch, 1, envelope...} with every envelope after that
--           offset in offset order, or {offset, epoch, 0} when they are not all kept.
-- position and recover create the epoch (offset 0) when the topic has none, and do
-- not extend the ttl. A topic whose keys are gone (ttl, eviction, a restart without
-- persistence) starts a new epoch, named after the server's clock in microseconds.

local history, meta = KEYS[1], KEYS[2]
local operation, channel = ARGV[1], ARGV[2]
local size, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])

-- Whether CHANNEL has a hash tag: a non-empty part between its first "{" and the next "}".
local function has_tag(name)
  local open = string.find(name, "{", 1, true)
  local close = open and string.find(name, "}", open + 1, true)
  return close ~= nil and close > open + 1
end
-- Whether key is CHANNEL's key with this suffix, in the form slotKey gives it.
local function of_channel(key, suffix)
  local name = tostring(channel)
  local plain = name .. suffix
  if has_tag(name) then return key == plain end
  if not string.find(name, "}", 1, true) then return key == "{" .. name .. "}" .. suffix end
  return string.sub(key, 1, #plain + 1) == plain .. ":" and #key == #plain + 5
end
if not of_channel(history, ":history") or not of_channel(meta, ":meta") then
  return redis.error_reply("shark history: KEYS must be {CHANNEL}:history and {CHANNEL}:meta for ARGV[2] CHANNEL")
end
if not size or size < 1 or size > 10000 or size % 1 ~= 0 then
  return redis.error_reply("shark history: size (ARGV[3]) must be an integer from 1 to 10000")
end
if not ttl or ttl <= 0 then
  return redis.error_reply("shark history: ttl (ARGV[4]) must be a number of seconds > 0")
end
local ttl_ms = math.ceil(ttl * 1000)

-- The topic's epoch and last offset, creating the epoch when the topic has none.
local function current()
  local state = redis.call("HMGET", meta, "epoch", "offset")
  if state[1] then return state[1], tonumber(state[2]) end
  local now = redis.call("TIME")
  local epoch = string.format("%x%05x", tonumber(now[1]), tonumber(now[2]))
  -- A stream left without its meta (evicted alone) belongs to a lost epoch.
  redis.call("DEL", history)
  redis.call("HSET", meta, "epoch", epoch, "offset", 0)
  redis.call("PEXPIRE", meta, ttl_ms)
  return epoch, 0
end

if operation == "publish" then
  local envelope = ARGV[5]
  local ok, decoded = pcall(cjson.decode, envelope or "")
  if not ok or type(decoded) ~= "table" then
    return redis.error_reply("shark history: the envelope (ARGV[5]) is not a JSON object")
  end
  local subscription = decoded.subscription
  if type(subscription) ~= "string" or subscription == "" then
    return redis.error_reply("shark history: the envelope needs a \"subscription\" string")
  end
  if string.sub(channel, -#subscription) ~= subscription then
    return redis.error_reply("shark history: CHANNEL must end with the envelope's subscription")
  end
  if decoded.data == nil then
    return redis.error_reply("shark history: the envelope needs a \"data\" field")
  end
  local epoch = current()
  local offset = redis.call("HINCRBY", meta, "offset", 1)
  local last = #envelope
  while string.find(string.sub(envelope, last, last), "^%s$") do last = last - 1 end
  local positioned = string.sub(envelope, 1, last - 1)
      .. string.format(',"offset":%d,"epoch":"%s"}', offset, epoch)
  redis.call("XADD", history, "MAXLEN", size, string.format("%d-0", offset), "p", positioned)
  redis.call("PEXPIRE", history, ttl_ms)
  redis.call("PEXPIRE", meta, ttl_ms)
  redis.call(ARGV[6] == "SPUBLISH" and "SPUBLISH" or "PUBLISH", channel, positioned)
  return { offset, epoch }
end

if operation == "position" then
  local epoch, offset = current()
  return { offset, epoch }
end

if operation == "recover" then
  local from, wanted = tonumber(ARGV[5]), ARGV[6]
  if not from or from < 0 or from % 1 ~= 0 or not wanted then
    return redis.error_reply("shark history: recover needs an offset (ARGV[5]) and an epoch (ARGV[6])")
  end
  local epoch, offset = current()
  local missed = offset - from
  if wanted ~= epoch or missed < 0 or missed > redis.call("XLEN", history) then
    return { offset, epoch, 0 }
  end
  local reply = { offset, epoch, 1 }
  if missed == 0 then return reply end
  local entries = redis.call("XRANGE", history, string.format("%d-0", from + 1), "+")
  if #entries ~= missed or entries[1][1] ~= string.format("%d-0", from + 1) then
    return { offset, epoch, 0 }
  end
  for index, entry in ipairs(entries) do reply[index + 3] = entry[2][2] end
  return reply
end

return redis.error_reply("shark history: ARGV[1] must be publish, position or recover")
