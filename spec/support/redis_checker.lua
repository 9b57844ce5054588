--- The Redis fault suite's checker: worker processes log what happened to their grants, one
-- line per event, and check() judges the whole log afterwards.
--
-- A line is "<event> <CLOCK_MONOTONIC seconds> <pid> <token>", appended with one write(2) to
-- a file opened O_APPEND, so that the lines of concurrent processes never interleave:
--   grant           the worker's acquire returned a grant with this fencing token
--   release         the worker is about to release it (logged before the release, so that
--                   the logged hold lies within the real one)
--   lost            the worker learnt (check(), ensure(), release) that it no longer holds it
--   write_ok        a fenced write with this token was accepted
--   write_rejected  a fenced write with this token was rejected (a newer token had written)
--                   (a write is logged at the time its writer decided to make it: the check
--                   that found the grant held, or the decision to write with a lost one)
--   killed          logged by the spec, not the worker, just before it SIGKILLs a worker:
--                   the worker's grant (token "-": whichever it held) ends there at the latest
local core = require "portalock.core"

local checker = {}

local EVENTS = {grant = true, release = true, lost = true, write_ok = true, write_rejected = true,
  killed = true}

--- Appends one event for `pid` (default: this process) at monotonic `time` (default: now).
function checker.record(path, event, token, pid, time)
  assert(EVENTS[event], "unknown event " .. tostring(event))
  -- A token is a decimal string (.token); a number (the checker's own tests) goes in with %.0f,
  -- not tostring: Lua 5.1 and LuaJIT print one of about 2^51 in 14 digits with an exponent.
  local line = string.format("%s %.9f %d %s\n", event, time or core.monotonic(), pid or core.getpid(),
    type(token) == "number" and string.format("%.0f", token) or token or "-")
  local f = assert(io.open(path, "a"))
  f:write(line) -- one line fits the stream's buffer: close() writes it in one write(2)
  f:close()
end

local function describe(e)
  return string.format("line %d (%s %.6f pid %d token %s)", e.line, e.event, e.time, e.pid,
    e.token and tostring(e.token) or "-")
end

--- The log's events in time order (ties: file order); nil, message for a malformed line.
function checker.parse(path)
  local f = io.open(path, "r")
  if not f then
    return nil, "no log at " .. path
  end
  local events, n = {}, 0
  for text in f:lines() do
    n = n + 1
    local event, time, pid, token = text:match("^(%S+) (%d+%.?%d*) (%d+) (%S+)$")
    if not (event and EVENTS[event]) or (token ~= "-" and not token:match("^%d+$"))
      or (token == "-" and event ~= "killed") then
      f:close()
      return nil, string.format("line %d is malformed: %q", n, text)
    end
    events[#events + 1] = {line = n, event = event, time = tonumber(time), pid = tonumber(pid),
      token = tonumber(token)}
  end
  f:close()
  table.sort(events, function(a, b)
    if a.time ~= b.time then
      return a.time < b.time
    end
    return a.line < b.line
  end)
  return events
end

-- One interval per grant: from the grant to its release, to the kill of its holder, or, for a
-- grant reported lost, to the holder's last accepted write under it (or the grant itself).
-- A lost grant ended at some unlogged moment before `lost` (a paused holder learns it late);
-- what the log shows is that its holder acted on it until then, and its later writes are
-- judged by the stale-write rule.
local function intervals(events)
  local holding, list = {}, {}
  for _, e in ipairs(events) do
    local held = holding[e.pid]
    if e.event == "grant" then
      if held then
        return nil, describe(e) .. ": granted while " .. describe(held.grant) .. " is still held"
      end
      held = {grant = e, start = e.time, finish = math.huge, acted = e.time}
      holding[e.pid], list[#list + 1] = held, held
    elseif e.event == "release" or e.event == "lost" then
      if not held or held.grant.token ~= e.token then
        return nil, describe(e) .. ": pid " .. e.pid .. " does not hold token " .. e.token
      end
      held.finish = e.event == "release" and e.time or held.acted
      held.ended, holding[e.pid] = e, nil
    elseif e.event == "killed" then
      if held then
        held.finish, held.ended, holding[e.pid] = e.time, e, nil
      end
    elseif e.event == "write_ok" and held and held.grant.token == e.token then
      held.acted = e.time
    end
  end
  return list
end

-- The most holders at once and, when more than `maximum`, the intervals of the first such
-- moment. An interval that ends when another starts does not overlap it.
local function overlap(list, maximum)
  local points = {}
  for _, h in ipairs(list) do
    points[#points + 1] = {time = h.start, h = h, delta = 1}
    points[#points + 1] = {time = h.finish, h = h, delta = -1}
  end
  table.sort(points, function(a, b)
    if a.time ~= b.time then
      return a.time < b.time
    end
    return a.delta < b.delta
  end)
  local active, count, peak = {}, 0, 0
  for _, p in ipairs(points) do
    active[p.h] = p.delta > 0 or nil
    count = count + p.delta
    peak = math.max(peak, count)
    if count > maximum then
      local names = {}
      for h in pairs(active) do
        names[#names + 1] = h
      end
      table.sort(names, function(a, b) return a.grant.line < b.grant.line end)
      for i, h in ipairs(names) do
        names[i] = describe(h.grant) .. (h.ended and " until line " .. h.ended.line or " never ended")
      end
      return peak, string.format("%d holders at once (maximum %d): %s", count, maximum, table.concat(names, "; "))
    end
  end
  return peak
end

-- The grants in time order with, for each, the largest token granted up to it.
local function token_prefix(grants)
  local largest, prefix = 0, {}
  for i, g in ipairs(grants) do
    if g.token > largest then
      largest, prefix[i] = g.token, g
    else
      prefix[i] = prefix[i - 1]
    end
  end
  return prefix
end

-- The newest grant made before `time` whose token is above `token`, if any (binary search
-- for the last grant before `time`, then the first grant that reached its largest token).
local function newer_grant_before(grants, prefix, time, token)
  local lo, hi = 0, #grants
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if grants[mid].time < time then
      lo = mid
    else
      hi = mid - 1
    end
  end
  local top = lo > 0 and prefix[lo]
  if top and top.token > token then
    return top
  end
end

-- Tokens are unique; with one holder at a time they increase strictly in grant order. With
-- several, the log orders two grants only when one was logged before the other's holder
-- began asking (its previous grant's end): then its token is the smaller.
local function check_tokens(grants, prefix, list, maximum)
  local seen = {}
  for _, g in ipairs(grants) do
    if seen[g.token] then
      return describe(g) .. ": token " .. g.token .. " was already granted at " .. describe(seen[g.token])
    end
    seen[g.token] = g
  end
  if maximum == 1 then
    for i = 2, #grants do
      if grants[i].token <= grants[i - 1].token then
        return describe(grants[i]) .. ": token not above " .. describe(grants[i - 1]) .. ", granted before it"
      end
    end
    return nil
  end
  local asked = {} -- grant -> when its holder began asking: the end of its previous grant
  local previous = {}
  for _, h in ipairs(list) do
    local before = previous[h.grant.pid]
    asked[h.grant] = before and before.ended and before.ended.time
    previous[h.grant.pid] = h
  end
  for _, g in ipairs(grants) do
    local earlier = asked[g] and newer_grant_before(grants, prefix, asked[g], g.token - 1)
    if earlier then
      return describe(g) .. ": token not above " .. describe(earlier) .. ", granted before this holder asked"
    end
  end
end

-- A write accepted under a token after a newer token was granted is a stale write; with
-- `lost_first`, any write after such a grant must also come after its writer reported lost.
local function check_writes(events, grants, prefix, lost_first)
  local lost_at = {}
  for _, e in ipairs(events) do
    if e.event == "lost" then
      lost_at[e.pid .. " " .. e.token] = lost_at[e.pid .. " " .. e.token] or e
    elseif e.event == "write_ok" or e.event == "write_rejected" then
      local newer = newer_grant_before(grants, prefix, e.time, e.token)
      if newer and e.event == "write_ok" then
        return describe(e) .. ": a write with an old token accepted after " .. describe(newer)
      end
      if newer and lost_first and not lost_at[e.pid .. " " .. e.token] then
        return describe(e) .. ": written after " .. describe(newer) .. " before its writer reported lost"
      end
    end
  end
end

--- Judges the log at `path`. opts.maximum: holders allowed at once (default 1);
--- opts.lost_before_stale_write: a holder overtaken by a newer grant reports lost before it
--- writes again (pause and partition scenarios). With maximum 1, a write accepted after a
--- newer grant fails the check. Returns a report {events, grants, release, lost, killed,
--- write_ok, write_rejected (counts), peak (most holders at once)}, or nil and a message
--- naming the lines at fault.
function checker.check(path, opts)
  opts = opts or {}
  local maximum = opts.maximum or 1
  local events, err = checker.parse(path)
  if not events then
    return nil, err
  end
  local list
  list, err = intervals(events)
  if not list then
    return nil, err
  end
  local peak
  peak, err = overlap(list, maximum)
  if err then
    return nil, err
  end
  local grants = {}
  for i, h in ipairs(list) do
    grants[i] = h.grant
  end
  local prefix = token_prefix(grants)
  err = check_tokens(grants, prefix, list, maximum)
    or (maximum == 1 and check_writes(events, grants, prefix, opts.lost_before_stale_write))
  if err then
    return nil, err
  end
  local report = {events = events, peak = peak, grants = #grants, release = 0, lost = 0, killed = 0,
    write_ok = 0, write_rejected = 0}
  for _, e in ipairs(events) do
    if e.event ~= "grant" then
      report[e.event] = report[e.event] + 1
    end
  end
  return report
end

return checker
