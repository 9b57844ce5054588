--- The request handlers of bench/nginx/run, loaded inside nginx (LuaJIT) as "handlers".
-- Each location of the runner's nginx.conf calls one function here; the query argument impl
-- says which implementation a request uses:
--   lock   portalock.Lock (default options)
--   sem    portalock.BoundedSemaphore(2)
--   resty  lua-resty-lock on lua_shared_dict locks
--   dict   a naive lua_shared_dict counting semaphore (item 6's peer)
--   none   nothing: the request's own cost, or the unlocked control
-- Times are taken with portalock.core.monotonic() (clock_gettime(CLOCK_MONOTONIC)): ngx.now()
-- has a resolution of 1 ms. Figures that outlive a request go to lua_shared_dict stats.
-- luacheck: read globals ngx
local portalock = require "portalock"
local core = require "portalock.core"

local M = {}

local stats = ngx.shared.stats
local monotonic = core.monotonic
local directory -- the lock directory, set by configure() in init_by_lua
local resty_lock -- the resty.lock module, or nil when the runner has none

-- resty.lock's waiting schedule (its defaults step = 0.001 s, ratio = 2, max_step = 0.5 s),
-- which the shared-dict semaphore uses for its polling.
local STEP, RATIO, MAX_STEP = 0.001, 2, 0.5
local HOLD = 0.05 -- item 6: the semaphore is held 50 ms
local SEMAPHORE_MAXIMUM = 2

--- Called from init_by_lua (the master): where lock files go, and whether resty.lock is there.
function M.configure(lock_directory, with_resty)
  directory = lock_directory
  if with_resty then
    resty_lock = require "resty.lock"
  end
end

local function path(name)
  return directory .. "/" .. name
end

local function must(ok, err)
  if not ok then
    error(tostring(err), 2)
  end
  return ok
end

local function arg(name)
  local value = ngx.var["arg_" .. name]
  if not value or value == "" then
    error("query argument " .. name .. " is missing", 2)
  end
  return value
end

-- The entry of `choices` that the query argument impl names.
local function chosen(choices)
  local impl = arg("impl")
  return choices[impl] or error("no implementation " .. impl .. " here", 2)
end

-- One acquire+release of `name` for each implementation, on objects made once per request
-- (one semaphore object per request, as the library asks of nginx users).
local function acquire_release(object)
  return function()
    must(object:acquire())
    must(object:release())
  end
end

local CYCLES = {
  lock = function(name)
    return acquire_release(portalock.Lock(path(name)))
  end,
  sem = function(name)
    return acquire_release(portalock.BoundedSemaphore(SEMAPHORE_MAXIMUM, {name = name,
      directory = directory}))
  end,
  resty = function(name)
    local lock = must(resty_lock:new("locks"))
    return function()
      must(lock:lock(name))
      must(lock:unlock())
    end
  end,
  none = function()
    return function() end
  end,
}

-- A name of each worker's own: no request ever waits on the other worker.
local function cycle_of(name)
  return chosen(CYCLES)(name .. "-w" .. ngx.worker.id())
end

--- /loop?impl=&k=: K acquire+release cycles after one warm-up cycle; the body is the mean
--- time of a cycle in ns.
function M.loop()
  local k = tonumber(arg("k"))
  local cycle = cycle_of("loop")
  cycle()
  local started = monotonic()
  for _ = 1, k do
    cycle()
  end
  ngx.print(string.format("%.1f", (monotonic() - started) / k * 1e9))
end

--- /one?impl=: one object and one acquire+release per HTTP request.
function M.one()
  cycle_of("one")()
  ngx.print("ok")
end

-- Item 1: a read-modify-write of a shared-dict counter that yields in the middle (1 ms), so
-- that only mutual exclusion across both workers keeps every increment.
local function increment(key)
  local value = stats:get(key) or 0
  ngx.sleep(0.001)
  stats:set(key, value + 1)
end

-- Acquires a portalock object: its release function, or nil, err.
local function acquired(object)
  local held, err = object:acquire()
  if not held then
    return nil, err
  end
  return function() must(object:release()) end
end

local EXCLUSIVE = {
  lock = function(key)
    return acquired(portalock.Lock(path(key)))
  end,
  resty = function(key)
    local lock = must(resty_lock:new("locks"))
    local elapsed, err = lock:lock(key)
    if not elapsed then
      return nil, err
    end
    return function() must(lock:unlock()) end
  end,
  none = function()
    return function() end
  end,
}

--- /incr?impl=&key=: the increment under the implementation's lock; 503 when it timed out.
function M.incr()
  local key = arg("key")
  local release, err = chosen(EXCLUSIVE)(key)
  if not release then
    stats:incr(key .. ":failed", 1, 0)
    ngx.log(ngx.INFO, "incr: ", tostring(err))
    return ngx.exit(503)
  end
  local ok, problem = pcall(increment, key)
  release()
  must(ok, problem)
  ngx.print("ok")
end

-- The naive shared-dict semaphore: take a count, give it back and poll when over the maximum.
local function dict_semaphore(key, timeout)
  local deadline = monotonic() + timeout
  local step = STEP
  while true do
    if stats:incr(key, 1, 0) <= SEMAPHORE_MAXIMUM then
      return function() stats:incr(key, -1) end
    end
    stats:incr(key, -1)
    local left = deadline - monotonic()
    if left <= 0 then
      return nil, "timeout"
    end
    ngx.sleep(math.max(0.001, math.min(step, left)))
    step = math.min(step * RATIO, MAX_STEP)
  end
end

local SEMAPHORES = {
  sem = function(name, timeout)
    return acquired(portalock.BoundedSemaphore(SEMAPHORE_MAXIMUM, {name = name,
      directory = directory, timeout = timeout}))
  end,
  dict = function(name, timeout)
    return dict_semaphore(name .. ":count", timeout)
  end,
}

--- /sem?impl=&run=&timeout=: item 6, the semaphore of 2 held 50 ms. Records the acquire wait
--- (µs, timeouts included: their wait is the timeout) in the list run:waits, and counts
--- timeouts and the times more than two requests held at once.
function M.sem()
  local run = arg("run")
  local started = monotonic()
  local release, err = chosen(SEMAPHORES)(run, tonumber(arg("timeout")))
  stats:rpush(run .. ":waits", math.floor((monotonic() - started) * 1e6))
  if not release then
    stats:incr(run .. ":timeouts", 1, 0)
    ngx.log(ngx.INFO, "sem: ", tostring(err))
    return ngx.exit(503)
  end
  if stats:incr(run .. ":inside", 1, 0) > SEMAPHORE_MAXIMUM then
    stats:incr(run .. ":over", 1, 0)
  end
  local ok, problem = pcall(ngx.sleep, HOLD)
  stats:incr(run .. ":inside", -1)
  release()
  must(ok, problem)
  ngx.print("ok")
end

-- Item 4: `n` attempts that must fail at once on a held lock; their times in µs.
local ATTEMPTS = {
  -- held by another process (the runner's flock)
  lock = function(name, n)
    local lock = portalock.Lock(path(name), {fail_when_locked = true})
    local times = {}
    for i = 1, n do
      local started = monotonic()
      local fh, err = lock:acquire()
      times[i] = (monotonic() - started) * 1e6
      if fh or err.kind ~= "AlreadyLocked" then
        error("a fail_when_locked attempt on a held lock gave " .. tostring(fh or err))
      end
    end
    return times
  end,
  -- held by another lock object of this worker: resty.lock has no holder outside nginx
  resty = function(name, n)
    local holder = must(resty_lock:new("locks"))
    must(holder:lock(name))
    local lock = must(resty_lock:new("locks", {timeout = 0}))
    local times = {}
    for i = 1, n do
      local started = monotonic()
      local elapsed, err = lock:lock(name)
      times[i] = (monotonic() - started) * 1e6
      if elapsed or err ~= "timeout" then
        error("a timeout = 0 attempt on a held lock gave " .. tostring(elapsed or err))
      end
    end
    must(holder:unlock())
    return times
  end,
}

--- /attempts?impl=&n=&name=: the body is the attempts' times in µs, one a line.
function M.attempts()
  local times = chosen(ATTEMPTS)(arg("name"), tonumber(arg("n")))
  for i, t in ipairs(times) do
    times[i] = string.format("%.1f", t)
  end
  ngx.print(table.concat(times, "\n"))
end

--- /stats?key=: the counters key (item 1's count), key:failed, key:timeouts, key:over, and
--- the list key:waits (emptied).
function M.dump()
  local key = arg("key")
  local lines = {}
  for _, counter in ipairs({"count", "failed", "timeouts", "over"}) do
    local value = stats:get(counter == "count" and key or key .. ":" .. counter) or 0
    lines[#lines + 1] = counter .. " " .. value
  end
  local waits = {}
  while true do
    local wait = stats:lpop(key .. ":waits")
    if not wait then
      break
    end
    waits[#waits + 1] = wait
  end
  lines[#lines + 1] = "waits " .. table.concat(waits, " ")
  ngx.print(table.concat(lines, "\n"))
end

--- /about: what runs the benchmark: versions and the worker's user.
function M.about()
  local uid
  for line in io.lines("/proc/self/status") do
    uid = uid or line:match("^Uid:%s+(%d+)")
  end
  local jit = rawget(_G, "jit")
  ngx.print(table.concat({
    "nginx " .. ngx.config.nginx_version,
    "ngx_lua " .. ngx.config.ngx_lua_version,
    "jit " .. (jit and jit.version or "none"),
    "resty.lock " .. (resty_lock and resty_lock._VERSION or "none"),
    "worker_uid " .. uid,
    "worker_pid " .. ngx.worker.pid(),
  }, "\n"))
end

return M
