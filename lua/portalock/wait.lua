--- The waiting loop: the one place that decides how long to wait and how to sleep.
-- Sleeping strategies, chosen once per wait at the first contention:
--   * inside OpenResty, in a phase that may yield: ngx.sleep, backing off from 1 ms up to
--     check_interval; in `init` the wait may block; in any other phase it fails at once;
--   * with a scheduler plugged in (portalock.set_scheduler) and a coroutine that can yield:
--     the scheduler's sleep function, with the same back-off;
--   * otherwise the waiting object's own blocking wait (waiter:wait), which wakes when the
--     lock file is closed by its holder, or when the kernel grants the lock, or when a
--     semaphore count is posted (see portalock.h, portalock_wait), and returns to Lua at
--     least every check_interval (so Ctrl-C hooks run).
local core = require "portalock.core"
local errors = require "portalock.errors"

local M = {}

local scheduler_sleep
-- Back-off sleeps taken in OpenResty or under a scheduler (they poll: no descriptor there).
local backoff_sleeps = 0

-- ngx.get_phase() names in which ngx.sleep is allowed (lua-nginx-module's YIELDABLE set).
local YIELDABLE_PHASES = {
  rewrite = true, server_rewrite = true, access = true, precontent = true, content = true,
  timer = true, ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

--- Plugs in (or, with nil, removes) a scheduler: `sleep(seconds)` yields the running
--- coroutine to it and resumes it after about that long.
function M.set_scheduler(sleep)
  scheduler_sleep = sleep
end

local function can_yield_coroutine()
  local co, is_main = coroutine.running()
  if co == nil or is_main then
    return false
  end
  return coroutine.isyieldable == nil or coroutine.isyieldable()
end

--- What ended this process's waits so far (portalock_wait_counters in portalock.h): event,
--- kernel, timer, deadline, signal, lost_race, unwatched; plus backoff, the polling sleeps
--- taken in OpenResty or under a scheduler.
function M.counters()
  local counters = core.wait_counters()
  counters.backoff = backoff_sleeps
  return counters
end

local function backoff_sleeper(sleep, check_interval)
  local delay = 0.001
  return function(next_attempt, deadline)
    local now = core.monotonic()
    local wake = math.min(now + delay, next_attempt or math.huge, deadline)
    delay = math.min(delay * 2, check_interval)
    backoff_sleeps = backoff_sleeps + 1
    sleep(math.max(0, wake - now))
  end
end

local function blocking_sleeper(check_interval, waiter)
  return function(next_attempt, deadline)
    local limit = core.monotonic() + check_interval
    -- A hook's error (Ctrl-C) raised as the wait returns must not strand what the wait may
    -- have taken (a lock granted by the kernel, a semaphore count): give the wait up first.
    local ok, err = pcall(waiter.wait, waiter, math.min(next_attempt or limit, limit), deadline)
    if not ok then
      waiter:wait_done()
      error(err, 0)
    end
  end
end

-- Returns {sleep = function(next_attempt, deadline) | nil, yields = boolean,
-- phase = name of an nginx phase that forbids waiting | nil}.
local function strategy(check_interval, waiter)
  -- 0 (or anything shorter) re-checks every CHECK_INTERVAL_MIN, never in a busy loop
  check_interval = math.max(check_interval, core.CHECK_INTERVAL_MIN)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then
    local phase = ngx.get_phase()
    if YIELDABLE_PHASES[phase] then
      return {sleep = backoff_sleeper(ngx.sleep, check_interval), yields = true}
    elseif phase ~= "init" then
      return {yields = false, phase = phase}
    end
  elseif scheduler_sleep and can_yield_coroutine() then
    return {sleep = backoff_sleeper(scheduler_sleep, check_interval), yields = true}
  end
  return {sleep = blocking_sleeper(check_interval, waiter), yields = false}
end

-- `holder_pid`: the live process the lock names (a PidFileLock's), or nil.
local function already_locked(path, why, holder_pid)
  local by = holder_pid and string.format(" by process %d", holder_pid) or ""
  return errors.new("AlreadyLocked", string.format("'%s' is locked%s: %s", path, by, why),
    {path = path, holder_pid = holder_pid})
end

local function deadlock(path, same_owner, holder_pid)
  if same_owner then
    return already_locked(path, "this owner already holds it through another lock object, "
      .. "so waiting would deadlock", holder_pid)
  end
  return already_locked(path, "another coroutine of this Lua state holds it and this wait "
    .. "cannot yield (see portalock.set_scheduler), so waiting would deadlock", holder_pid)
end

local function phase_error(path, phase)
  return errors.new("LockException", string.format("cannot wait for '%s' in the '%s' phase: "
    .. "ngx.sleep is disabled there (use timeout = 0 or fail_when_locked)", path, phase),
    {path = path})
end

-- Gives the wait up: closes what the waiter kept for it (a no-op when it kept nothing).
local function give_up(waiter, err)
  waiter:wait_done()
  return nil, err
end

--- Runs `attempt` until it acquires, fails for good, or the wait is over.
--- attempt() returns "acquired" | "contended", fd, next_attempt, holder_pid | "in_state",
--- same_owner, nil, holder_pid | "failed", err (holder_pid: the live process a PidFileLock's
--- file names, or nil; the AlreadyLocked error names it). `waiter` is the core handle
--- attempted: waiter:wait(next_attempt, deadline) and waiter:wait_done(). settings: timeout,
--- check_interval, fail_when_locked. Returns true or nil, err.
function M.acquire(path, settings, attempt, waiter)
  local deadline = core.monotonic() + settings.timeout
  local how
  while true do
    local status, detail, next_attempt, holder_pid = attempt()
    if status == "acquired" then
      return true
    elseif status == "failed" then
      return nil, detail
    end
    how = how or strategy(settings.check_interval, waiter)
    if status == "in_state" and detail then
      return give_up(waiter, deadlock(path, detail, holder_pid))
    elseif settings.fail_when_locked then
      return give_up(waiter, already_locked(path, "gave up at the first contention (fail_when_locked)",
        holder_pid))
    elseif settings.timeout == 0 then
      return give_up(waiter, already_locked(path, "gave up at the first contention (timeout 0)",
        holder_pid))
    elseif core.monotonic() >= deadline then
      return give_up(waiter, already_locked(path,
        string.format("gave up after the timeout of %g s", settings.timeout), holder_pid))
    elseif how.phase then
      return give_up(waiter, phase_error(path, how.phase))
    elseif status == "in_state" and not how.yields then
      return give_up(waiter, deadlock(path, false, holder_pid))
    end
    how.sleep(status == "contended" and next_attempt or nil, deadline)
  end
end

return M
