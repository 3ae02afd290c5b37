"""The Redis script: apply outcomes, record a request and read its features, atomically.

One script run per subject and call, so a decision costs one round trip. Keys all
carry the subject's hash tag and live in one Cluster slot. A key of the wrong type
(written by something else) is refused before anything is written, with an error
reply about this subject only. The bucketing is the
memory store's (``_windows``): bucket numbers come from Python, each window keeps
running totals (fields ``t1``..``tk``), its newest bucket (``hz``) and per-bucket
fields ``<bucket>:<column>``; a window wholly expired is deleted in one go.
"""

from __future__ import annotations

__all__ = ["SCRIPT"]

# KEYS: 1 minute  2 hour  3 day  4 hours  5 resources  6..8 seen devices / IPs / countries
# ARGV: 1 ttl  2 span  3 hours span  4 seen span  5 max resources  6 max seen
#       7 number of outcomes, then 7 per outcome:
#         hour bucket, day bucket, hour id, records, denied, step-ups, create (0/1)
#       then, if a request follows: "r", minute bucket, hour bucket, day bucket, hour id,
#         records, resource, device, ip, country ("" = absent)
SCRIPT = r"""
local ttl = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local hspan = tonumber(ARGV[3])
local sspan = tonumber(ARGV[4])
local maxres = tonumber(ARGV[5])
local maxseen = tonumber(ARGV[6])

-- Keys someone else gave another type fail this subject alone, before anything is
-- written (the error names the key by position: the subject id may not be UTF-8).
local want = {'hash', 'hash', 'hash', 'hash', 'zset', 'zset', 'zset', 'zset'}
for k = 1, 8 do
  local t = redis.call('TYPE', KEYS[k]).ok
  if t ~= 'none' and t ~= want[k] then
    return redis.error_reply('WRONGTYPE behaviour key ' .. k .. ' holds a ' .. t ..
      ', not a ' .. want[k])
  end
end

local function advance(key, cur, width, ncols, active)
  local hz = tonumber(redis.call('HGET', key, 'hz'))
  if hz and cur <= hz then return end
  if hz then
    local cutoff = cur - width
    if cutoff >= hz then
      redis.call('DEL', key)
    elseif cutoff - (hz - width) > redis.call('HLEN', key) / ncols then
      -- fewer live buckets than expired bucket numbers: walk the fields instead
      local all = redis.call('HGETALL', key)
      for j = 1, #all, 2 do
        local b, c = string.match(all[j], '^(-?%d+):(%d+)$')
        if b and tonumber(b) <= cutoff then
          local v = tonumber(all[j + 1])
          if v ~= 0 then redis.call('HINCRBY', key, 't' .. c, -v) end
          if active and c == '2' and v > 0 then redis.call('HINCRBY', key, 'act', -1) end
          redis.call('HDEL', key, all[j])
        end
      end
    else
      for b = hz - width + 1, cutoff do
        local f = {}
        for c = 1, ncols do f[c] = b .. ':' .. c end
        local vals = redis.call('HMGET', key, unpack(f))
        local any = false
        for c = 1, ncols do
          local v = tonumber(vals[c])
          if v then
            any = true
            if v ~= 0 then redis.call('HINCRBY', key, 't' .. c, -v) end
            if active and c == 2 and v > 0 then redis.call('HINCRBY', key, 'act', -1) end
          end
        end
        if any then redis.call('HDEL', key, unpack(f)) end
      end
    end
  end
  redis.call('HSET', key, 'hz', cur)
end

local function add(key, b, width, vals, active)
  local hz = tonumber(redis.call('HGET', key, 'hz'))
  if (not hz) or b <= hz - width then return end
  for c = 1, #vals do
    local v = vals[c]
    if v ~= 0 then
      if active and c == 2 and v > 0 then
        if tonumber(redis.call('HGET', key, b .. ':2') or '0') == 0 then
          redis.call('HINCRBY', key, 'act', 1)
        end
      end
      redis.call('HINCRBY', key, b .. ':' .. c, v)
      redis.call('HINCRBY', key, 't' .. c, v)
    end
  end
end

local function total(key, c)
  return tonumber(redis.call('HGET', key, 't' .. c) or '0')
end

local function seen(key, value, hour)
  if value == '' then return 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', hour - sspan)
  local had = redis.call('ZCARD', key) > 0
  local score = redis.call('ZSCORE', key, value)
  local new = 0
  if had and not score then new = 1 end
  if (not score) or tonumber(score) < hour then
    redis.call('ZADD', key, hour, value)
  end
  local n = redis.call('ZCARD', key)
  if n > maxseen then redis.call('ZREMRANGEBYRANK', key, 0, n - maxseen - 1) end
  redis.call('EXPIRE', key, ttl)
  return new
end

local i = 8
for _ = 1, tonumber(ARGV[7]) do
  local bh, bd, hid = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local rec, den, stp = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  if ARGV[i + 6] == '1' then
    advance(KEYS[2], bh, span, 4, false)
    advance(KEYS[3], bd, span, 2, false)
    advance(KEYS[4], hid, hspan, 2, true)
  end
  add(KEYS[2], bh, span, {0, rec, den, stp}, false)
  add(KEYS[3], bd, span, {0, rec}, false)
  add(KEYS[4], hid, hspan, {rec, 0}, true)
  for k = 2, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
  i = i + 7
end

if ARGV[i] ~= 'r' then return {} end
local bm, bh, bd, hid = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
  tonumber(ARGV[i + 4])
local rec = tonumber(ARGV[i + 5])

advance(KEYS[1], bm, span, 1, false)
add(KEYS[1], bm, span, {1}, false)
advance(KEYS[2], bh, span, 4, false)
add(KEYS[2], bh, span, {1, rec, 0, 0}, false)
advance(KEYS[3], bd, span, 2, false)
add(KEYS[3], bd, span, {1, rec}, false)
advance(KEYS[4], hid, hspan, 2, true)
local cur_rec = tonumber(redis.call('HGET', KEYS[4], hid .. ':1') or '0')
local cur_req = tonumber(redis.call('HGET', KEYS[4], hid .. ':2') or '0')
local base_sum = total(KEYS[4], 1) - cur_rec
local base_hours = tonumber(redis.call('HGET', KEYS[4], 'act') or '0')
if cur_req > 0 then base_hours = base_hours - 1 end
add(KEYS[4], hid, hspan, {rec, 1}, true)

local res = KEYS[5]
redis.call('ZREMRANGEBYSCORE', res, '-inf', bh - span)
local old = redis.call('ZSCORE', res, ARGV[i + 6])
if (not old) or tonumber(old) < bh then redis.call('ZADD', res, bh, ARGV[i + 6]) end
local distinct = redis.call('ZCARD', res)
if distinct > maxres then
  redis.call('ZREMRANGEBYRANK', res, 0, distinct - maxres - 1)
  distinct = maxres
end

local out = {
  total(KEYS[1], 1), total(KEYS[2], 1), total(KEYS[3], 1),
  total(KEYS[2], 2), total(KEYS[3], 2), distinct,
  total(KEYS[2], 3), total(KEYS[2], 4),
  seen(KEYS[6], ARGV[i + 7], hid), seen(KEYS[7], ARGV[i + 8], hid),
  seen(KEYS[8], ARGV[i + 9], hid),
  base_sum, base_hours,
}
for k = 1, 5 do redis.call('EXPIRE', KEYS[k], ttl) end
return out
"""
