"""The Redis scripts: the subject's (apply outcomes, record a request and read its
features, atomically) and the group table's (publish or withdraw member figures).

One script run per subject and call, so a decision costs one round trip. Keys all
carry the subject's hash tag and live in one Cluster slot. A key of the wrong type
(written by something else) is refused before anything is written, a counter that
is no integer before a request writes anything: either with an error reply about
this subject only. The bucketing is the
memory store's (``_windows``): bucket numbers come from Python, each window keeps
running totals (fields ``t1``..``tk``), its newest bucket (``hz``) and per-bucket
fields ``<bucket>:<column>``; a window wholly expired is deleted in one go.

The UTC-day hash (key 9) keeps its day buckets and the sums the long features read
(7 and 30 days, and the ``peer_days`` before the newest day), so a request reads
them in O(1); a new day recounts them from the buckets (one walk of the hash, once a
day per subject), as the memory store's ``Days`` does. Key 10 holds each resource's
last-seen hour for the long distinct counts.
"""

from __future__ import annotations

__all__ = ["GROUP_SCRIPT", "KEYS", "SCRIPT"]

#: Keys the subject's script takes.
KEYS = 10

# KEYS: 1 minute  2 hour  3 day  4 hours  5 resources  6..8 seen devices / IPs / countries
#       9 UTC days  10 resources' last-seen hours (long windows)
# ARGV: 1 ttl  2 span  3 hours span  4 seen span  5 max resources  6 max seen
#       7 peer days + 1  8 max distinct (long windows)
#       9 number of outcomes, then 8 per outcome:
#         hour bucket, day bucket, hour id, UTC day, records, denied, step-ups, create (0/1)
#       then, if a request follows: "r", minute bucket, hour bucket, day bucket, hour id,
#         UTC day, records, resource, device, ip, country ("" = absent)
# Reply: the 13 numbers of the short windows, then records 7 d / 30 d, distinct resources
#   24 h / 7 d / 30 d, active days in 30, the peer window's records / distinct sum /
#   active days (today excluded), and 1 when this is the subject's first request of
#   its UTC day (else 0).
SCRIPT = r"""
local ttl = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local hspan = tonumber(ARGV[3])
local sspan = tonumber(ARGV[4])
local maxres = tonumber(ARGV[5])
local maxseen = tonumber(ARGV[6])
local pspan = tonumber(ARGV[7])
local maxdistinct = tonumber(ARGV[8])

-- Keys someone else gave another type fail this subject alone, before anything is
-- written (the error names the key by position: the subject id may not be UTF-8).
-- Outcomes check every key first; a request's reads check them as they read.
local want = {'hash', 'hash', 'hash', 'hash', 'zset', 'zset', 'zset', 'zset', 'hash', 'zset'}
local function wrong(k, cause)
  local t = redis.call('TYPE', KEYS[k]).ok
  if t == 'none' or t == want[k] then return cause end
  return redis.error_reply('WRONGTYPE behaviour key ' .. k .. ' holds a ' .. t ..
    ', not a ' .. want[k])
end
if tonumber(ARGV[9]) > 0 then
  for k = 1, 10 do
    local t = redis.call('TYPE', KEYS[k]).ok
    if t ~= 'none' and t ~= want[k] then return wrong(k) end
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

-- UTC days: bucket fields '<day>:1' records, ':2' requests, ':3' distinct resources
-- first requested that day, kept 'keep' days back from 'hz', the newest day of a
-- request (corrections never move it, so it is also the day of the last request).
-- The sums the features read, by how far a day is behind hz ('back'): records with
-- back < 7 ('r7') and < 30 ('r30'), active days with back < 30 ('a30'), and over
-- 0 < back <= peer days the records, active days and distinct counts ('rp', 'ap',
-- 'dp'). A new day recounts them from the buckets, once a day per subject.
local days = KEYS[9]
local keep = math.max(30, pspan)

local function days_advance(cur)
  local hz = tonumber(redis.call('HGET', days, 'hz'))
  if hz and cur <= hz then return end
  local rows = {}
  local all = redis.call('HGETALL', days)
  for j = 1, #all, 2 do
    local b, c = string.match(all[j], '^(-?%d+):([123])$')
    if b then
      b = tonumber(b)
      local row = rows[b]
      if not row then
        row = {0, 0, 0}
        rows[b] = row
      end
      row[tonumber(c)] = tonumber(all[j + 1])
    end
  end
  local sum = {r7 = 0, r30 = 0, a30 = 0, rp = 0, ap = 0, dp = 0}
  for b, row in pairs(rows) do
    local back = cur - b
    if back >= keep then
      redis.call('HDEL', days, b .. ':1', b .. ':2', b .. ':3')
    else
      if back < 7 then sum.r7 = sum.r7 + row[1] end
      if back < 30 then
        sum.r30 = sum.r30 + row[1]
        if row[2] > 0 then sum.a30 = sum.a30 + 1 end
      end
      if back > 0 and back < pspan then
        sum.rp = sum.rp + row[1]
        sum.dp = sum.dp + row[3]
        if row[2] > 0 then sum.ap = sum.ap + 1 end
      end
    end
  end
  redis.call('HSET', days, 'hz', cur, 'r7', sum.r7, 'r30', sum.r30, 'a30', sum.a30,
    'rp', sum.rp, 'ap', sum.ap, 'dp', sum.dp)
end

-- Add to day b. Without hz (a subject a correction creates) only the bucket is kept:
-- the first request's new day counts it.
local function days_add(b, vals, create)
  local hz = tonumber(redis.call('HGET', days, 'hz'))
  if not hz then
    if not create then return end
  elseif hz - b >= keep then
    return
  end
  local fresh = vals[2] > 0 and tonumber(redis.call('HGET', days, b .. ':2') or '0') == 0
  for c = 1, 3 do
    if vals[c] ~= 0 then redis.call('HINCRBY', days, b .. ':' .. c, vals[c]) end
  end
  if not hz then return end
  local back = hz - b
  if back < 30 then
    if vals[1] ~= 0 then
      if back < 7 then redis.call('HINCRBY', days, 'r7', vals[1]) end
      redis.call('HINCRBY', days, 'r30', vals[1])
    end
    if fresh then redis.call('HINCRBY', days, 'a30', 1) end
  end
  if back > 0 and back < pspan then
    if vals[1] ~= 0 then redis.call('HINCRBY', days, 'rp', vals[1]) end
    if vals[3] ~= 0 then redis.call('HINCRBY', days, 'dp', vals[3]) end
    if fresh then redis.call('HINCRBY', days, 'ap', 1) end
  end
end

local i = 10
for _ = 1, tonumber(ARGV[9]) do
  local bh, bd, hid = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local day = tonumber(ARGV[i + 3])
  local rec, den, stp = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
  if ARGV[i + 7] == '1' then
    advance(KEYS[2], bh, span, 4, false)
    advance(KEYS[3], bd, span, 2, false)
    advance(KEYS[4], hid, hspan, 2, true)
  end
  add(KEYS[2], bh, span, {0, rec, den, stp}, false)
  add(KEYS[3], bd, span, {0, rec}, false)
  add(KEYS[4], hid, hspan, {rec, 0}, true)
  days_add(day, {rec, 0, 0}, ARGV[i + 7] == '1')
  for k = 2, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
  redis.call('EXPIRE', days, ttl)
  i = i + 8
end

if ARGV[i] ~= 'r' then return {} end
local bm, bh, bd, hid = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
  tonumber(ARGV[i + 4])
-- the same numbers as the text they came as: a number made text again costs the
-- server a formatting (field names, scores, the TTL)
local sbh, shid, sday, sttl = ARGV[i + 2], ARGV[i + 4], ARGV[i + 5], ARGV[1]
local day, rec = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
local resource, device, ip, country = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]

-- A request reads each key once (HMGET / ZSCORE) before anything is written: the read
-- is also the key's type check. Each hash then takes one HSET of the values computed
-- from it, not a HINCRBY per field: every command a script calls costs the server
-- about a microsecond, and the script is the largest part of a decision's time.
local function notint(k)
  return redis.error_reply('ERR behaviour key ' .. k .. ' holds a counter that is no integer')
end

-- A hash's fields: hz as a number (or nil), the others as integers (absent: 0); nil
-- and an error reply when the key or a counter is not ours.
local function hread(k, fields)
  local r = redis.pcall('HMGET', KEYS[k], unpack(fields))
  if r.err then return nil, wrong(k, r) end
  local v = {tonumber(r[1])}
  for j = 2, #fields do
    local x = r[j]
    if not x then
      v[j] = 0
    elseif string.find(x, '^%-?%d+$') then
      v[j] = tonumber(x)
    else
      return nil, notint(k)
    end
  end
  return v
end

-- A member's score (nil: absent) in a sorted set, or nil and an error reply.
local function zread(k, member)
  local r = redis.pcall('ZSCORE', KEYS[k], member)
  if type(r) == 'table' then return nil, wrong(k, r) end
  return r and tonumber(r) or false
end

-- A short window's fields for the request: hz, totals t1..tn, bucket cur's fields
-- and ('act') its count of active buckets.
local totals, columns = {'t1', 't2', 't3', 't4'}, {':1', ':2', ':3', ':4'}
local function window_fields(cur, n, active)
  local fields = {'hz'}
  for c = 1, n do
    fields[1 + c] = totals[c]
    fields[1 + n + c] = cur .. columns[c]
  end
  if active then fields[2 * n + 2] = 'act' end
  return fields
end

-- Advance a short window to bucket cur and add vals to bucket cur, as ``advance`` and
-- ``add`` do, from the values v read before (read again after a walk of expired
-- buckets: a new bucket). Gives the values after the add and whether the bucket was
-- still in the window; nil and an error reply for a counter that is no integer.
local function record(k, fields, v, cur, width, vals, active)
  local n = #vals
  if (not v[1]) or cur > v[1] then
    advance(KEYS[k], cur, width, n, active)
    local err
    v, err = hread(k, fields)
    if not v then return nil, err end
  end
  if cur <= v[1] - width then return v, false end
  local set = {}
  for c = 1, n do
    local x = vals[c]
    if x ~= 0 then
      if active and c == 2 and x > 0 and v[1 + n + c] == 0 then
        v[2 * n + 2] = v[2 * n + 2] + 1
        set[#set + 1] = 'act'
        set[#set + 1] = v[2 * n + 2]
      end
      v[1 + c] = v[1 + c] + x
      v[1 + n + c] = v[1 + n + c] + x
      set[#set + 1] = fields[1 + c]
      set[#set + 1] = v[1 + c]
      set[#set + 1] = fields[1 + n + c]
      set[#set + 1] = v[1 + n + c]
    end
  end
  if #set > 0 then redis.call('HSET', KEYS[k], unpack(set)) end
  return v, true
end

-- Every read first (each key's type checked before any write).
local windows = {
  {1, bm, span, {1}, false},
  {2, bh, span, {1, rec, 0, 0}, false},
  {3, bd, span, {1, rec}, false},
  {4, hid, hspan, {rec, 1}, true},
}
local fields, read = {}, {}
local err
for w = 1, 4 do
  local k, cur, _, vals, active = unpack(windows[w])
  fields[w] = window_fields(ARGV[i + k], #vals, active)
  read[w], err = hread(k, fields[w])
  if not read[w] then return err end
end
local day_fields = {'hz', 'r7', 'r30', 'a30', 'rp', 'ap', 'dp', sday .. ':1', sday .. ':2',
  sday .. ':3'}
local dv
dv, err = hread(9, day_fields)
if not dv then return err end
local score = {}
for _, kv in ipairs({{5, resource}, {6, device}, {7, ip}, {8, country}, {10, resource}}) do
  local s
  s, err = zread(kv[1], kv[2])
  if s == nil then return err end
  score[kv[1]] = s
end

-- The short windows.
local added
for w = 1, 4 do
  local k, cur, width, vals, active = unpack(windows[w])
  read[w], added = record(k, fields[w], read[w], cur, width, vals, active)
  if not read[w] then return added end
end
local m, h, d, H = read[1], read[2], read[3], read[4]
-- the baseline: the hours before this one (this hour's records and activity left out)
local base_sum = H[2] - H[4]
local base_hours = H[6]
if added or H[5] > 0 then base_hours = base_hours - 1 end

-- Resources of the short windows (a score at or below the cutoff is removed first).
local res = KEYS[5]
local cutoff = bh - span
redis.call('ZREMRANGEBYSCORE', res, '-inf', cutoff)
local old = score[5]
if old and old <= cutoff then old = false end
if (not old) or old < bh then redis.call('ZADD', res, sbh, resource) end
local distinct = redis.call('ZCARD', res)
if distinct > maxres then
  redis.call('ZREMRANGEBYRANK', res, 0, distinct - maxres - 1)
  distinct = maxres
end

-- Long distinct counts: each resource's last-seen hour; a resource adds to its day's
-- distinct count when it was last seen (if still remembered) on an earlier day.
local long = KEYS[10]
redis.call('ZREMRANGEBYSCORE', long, '-inf', hid - 720)
local last = score[10]
if last and last <= hid - 720 then last = false end
local new_today = 0
if (not last) or math.floor(last / 24) < day then new_today = 1 end
if (not last) or last < hid then redis.call('ZADD', long, shid, resource) end
local kept = redis.call('ZCARD', long)
if kept > maxdistinct then
  redis.call('ZREMRANGEBYRANK', long, 0, kept - maxdistinct - 1)
  kept = maxdistinct
end

-- The UTC day (days_advance and days_add, from the values read).
local first = 0
if (not dv[1]) or dv[1] < day then
  first = 1
  days_advance(day)
  dv, err = hread(9, day_fields)
  if not dv then return err end
end
local dhz = dv[1]
if dhz - day < keep then
  local fresh = dv[9] == 0
  local set = {day_fields[9], dv[9] + 1}
  if rec ~= 0 then
    dv[8] = dv[8] + rec
    set[#set + 1] = day_fields[8]
    set[#set + 1] = dv[8]
  end
  if new_today ~= 0 then
    dv[10] = dv[10] + new_today
    set[#set + 1] = day_fields[10]
    set[#set + 1] = dv[10]
  end
  local back = dhz - day
  local function bump(j, x)
    if x ~= 0 then
      dv[j] = dv[j] + x
      set[#set + 1] = day_fields[j]
      set[#set + 1] = dv[j]
    end
  end
  if back < 30 then
    if back < 7 then bump(2, rec) end
    bump(3, rec)
    if fresh then bump(4, 1) end
  end
  if back > 0 and back < pspan then
    bump(5, rec)
    bump(7, new_today)
    if fresh then bump(6, 1) end
  end
  redis.call('HSET', days, unpack(set))
end

-- Seen devices, IPs, countries: new when others were seen within the span and this
-- one was not.
local function seen(k, value)
  if value == '' then return 0 end
  local key = KEYS[k]
  local gone = hid - sspan
  redis.call('ZREMRANGEBYSCORE', key, '-inf', gone)
  local s = score[k]
  if s and s <= gone then s = false end
  local count = redis.call('ZCARD', key)
  local new = 0
  if count > 0 and not s then new = 1 end
  if (not s) or s < hid then
    count = count + redis.call('ZADD', key, shid, value)
  end
  if count > maxseen then redis.call('ZREMRANGEBYRANK', key, 0, count - maxseen - 1) end
  redis.call('EXPIRE', key, sttl)
  return new
end

local out = {
  m[2], h[2], d[2], h[3], d[3], distinct, h[4], h[5],
  seen(6, device), seen(7, ip), seen(8, country),
  base_sum, base_hours,
  dv[2], dv[3],
  redis.call('ZCOUNT', long, '(' .. (hid - 24), '+inf'),
  redis.call('ZCOUNT', long, '(' .. (hid - 168), '+inf'),
  kept,
  dv[4], dv[5], dv[7], dv[6], first,
}
for k = 1, 5 do redis.call('EXPIRE', KEYS[k], sttl) end
for k = 9, 10 do redis.call('EXPIRE', KEYS[k], sttl) end
return out
"""

# KEYS: 1 a group's member table (a hash: field = subject tag, value = its figures)
# ARGV: 1 ttl, then triples: "s" field value (set), "d" field "" (remove), "c" field
#   value (remove if it still holds that value: a reader dropping a stale entry)
# The type is checked first, so a key someone else gave another type is left as it is.
GROUP_SCRIPT = r"""
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'none' and t ~= 'hash' then
  return redis.error_reply('WRONGTYPE behaviour group key holds a ' .. t .. ', not a hash')
end
local set = false
for j = 2, #ARGV, 3 do
  local op, field = ARGV[j], ARGV[j + 1]
  if op == 's' then
    redis.call('HSET', KEYS[1], field, ARGV[j + 2])
    set = true
  elseif op == 'd' or redis.call('HGET', KEYS[1], field) == ARGV[j + 2] then
    redis.call('HDEL', KEYS[1], field)
  end
end
if set then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return 1
"""
