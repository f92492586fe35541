"""The Lua scripts the Redis counters run (each one atomic on the Redis server).

Spend counters are hashes ``{s: spent, r: reserved}`` in integer units of 1e-10 USD (the unit
of the host's shared counters, ``budgets/shared.py``). Lua numbers are doubles, so amounts are
exact up to 2^53 units (about 900,000 USD per counter); caps above that are clamped.

Rate-limit buckets are hashes ``{l: level, u: updated, c: capacity}``; their clock is the Redis
server's ``TIME`` (the replicas' clocks need not agree). Floats go back to Python as strings
(Redis turns a Lua number into an integer).
"""

from __future__ import annotations

__all__ = ["BUCKET_GIVE", "BUCKET_TAKE", "RESERVE", "SEED", "SETTLE"]

#: KEYS: the counters. ARGV: amount, number of checks, then (1-based KEYS index, cap) pairs.
#: Returns {-1} (nothing done) if a counter does not exist yet; otherwise {failed check
#: (0: none, reserved on every counter), spent1, reserved1, spent2, ...} as they were before.
RESERVE = """
local amount = tonumber(ARGV[1])
local seen = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 's', 'r')
  if not v[1] then return {-1} end
  seen[i] = {tonumber(v[1]), tonumber(v[2] or 0)}
end
local failed = 0
for c = 1, tonumber(ARGV[2]) do
  local j = tonumber(ARGV[1 + 2 * c])
  local cap = tonumber(ARGV[2 + 2 * c])
  local used = seen[j][1] + seen[j][2]
  if used >= cap or used + amount > cap then
    failed = c
    break
  end
end
if failed == 0 then
  for _, k in ipairs(KEYS) do redis.call('HINCRBY', k, 'r', ARGV[1]) end
end
local out = {failed}
for i = 1, #KEYS do
  out[#out + 1] = seen[i][1]
  out[#out + 1] = seen[i][2]
end
return out
"""

#: KEYS: the counters. ARGV: minus the units held, units spent (integers as strings, passed to
#: HINCRBY as they are: Lua would print a 15-digit number in exponent form). A counter that
#: no longer exists (Redis restarted, or its window expired) is left alone: the next
#: reservation seeds it from the ledger, which holds this spend already.
SETTLE = """
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    if redis.call('HINCRBY', k, 'r', ARGV[1]) < 0 then
      redis.call('HSET', k, 'r', 0)
    end
    redis.call('HINCRBY', k, 's', ARGV[2])
  end
end
return 0
"""

#: KEYS[1]: a counter. ARGV: spent units, unix time to expire at (0: never). Creates it only
#: if it does not exist (the first replica to seed a window wins; the others keep its value).
SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'r', 0)
if tonumber(ARGV[2]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return 1
"""

_REFILL = """
local function level_of(k, cap, now)
  local v = redis.call('HMGET', k, 'l', 'u', 'c')
  if not v[1] then return cap, false end
  local level, updated, old = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  if now > updated then level = math.min(old, level + (now - updated) * old / 60.0) end
  if cap ~= old then level = cap - (old - level) end
  return level, true
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

#: KEYS: the buckets. ARGV: (capacity per minute, amount) per bucket, then the idle TTL.
#: Takes every amount or none; returns {seconds to wait (0: taken), level1, level2, ...}.
BUCKET_TAKE = (
    _REFILL
    + """
local n = #KEYS
local ttl = tonumber(ARGV[2 * n + 1])
local levels = {}
local wait = 0
for i, k in ipairs(KEYS) do
  local cap, amount = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  levels[i] = level_of(k, cap, now)
  local need = math.min(amount, cap)
  if levels[i] < need then wait = math.max(wait, (need - levels[i]) * 60.0 / cap) end
end
local out = {tostring(wait)}
for i, k in ipairs(KEYS) do
  local cap, amount = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  if wait == 0 then levels[i] = levels[i] - amount end
  redis.call('HSET', k, 'l', tostring(levels[i]), 'u', tostring(now), 'c', tostring(cap))
  redis.call('EXPIRE', k, ttl)
  out[#out + 1] = tostring(levels[i])
end
return out
"""
)

#: KEYS[1]: a bucket. ARGV: amount (negative takes), idle TTL. A missing bucket is left alone.
BUCKET_GIVE = (
    _REFILL
    + """
local v = redis.call('HGET', KEYS[1], 'c')
if not v then return 0 end
local cap = tonumber(v)
local level = level_of(KEYS[1], cap, now)
level = math.min(cap, level + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'l', tostring(level), 'u', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
)
