--- The waiting loop over a core acquisition (portalock_step in portalock.h): C decides when to
--- give up (and says so in the AlreadyLocked error), when to try again and on what to sleep;
--- this loop chooses only how to sleep, once per wait at the first contention:
---   * inside OpenResty, in a phase that may yield: in the worker's queue for what is waited
---     for, in arrival order (portalock.nginx), polling in its turn; in `init` the wait may
---     block; in any other phase it fails at once;
---   * with a scheduler plugged in (portalock.set_scheduler) and a coroutine that can yield:
---     the scheduler's sleep function, with the same back-off;
---   * otherwise the engine's own blocking sleep (acq:sleep), the one a C wait takes: it wakes
---     when the lock file is closed by its holder, or when the kernel grants the lock, or when
---     a semaphore count is posted (see portalock.h, portalock_wait); a signal returns it to
---     Lua (so Ctrl-C hooks run).
--- And the outcomes only Lua knows: the lock held by another owner of this Lua state.
local core = require "portalock.core"
local errors = require "portalock.errors"
local nginx = require "portalock.nginx"

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
  return function(_, next_attempt)
    local now = core.monotonic()
    local wake = math.min(now + delay, next_attempt)
    delay = math.min(delay * 2, check_interval)
    backoff_sleeps = backoff_sleeps + 1
    sleep(math.max(0, wake - now))
  end
end

local function blocking_sleeper(acq)
  return function(_, next_attempt)
    -- A hook's error (Ctrl-C) raised as the sleep returns must not strand what the sleep may
    -- have taken (a lock granted by the kernel, a semaphore count): give the wait up first.
    local ok, err = pcall(acq.sleep, acq, next_attempt)
    if not ok then
      acq:give_up()
      error(err, 0)
    end
  end
end

--- The phase (ngx.get_phase()) when running inside nginx (OpenResty), else nil.
function M.nginx_phase()
  if nginx.inside then
    return rawget(_G, "ngx").get_phase()
  end
end

--- True when a wait for `key` starting now would queue behind another waiter of this nginx
--- worker (see portalock.nginx): the caller then skips its first attempt.
function M.queued(key)
  return nginx.inside and YIELDABLE_PHASES[M.nginx_phase()] and nginx.waiting(key) or false
end

-- Returns {sleep = function(fd, next_attempt) | nil, yields = boolean, queue = true (in an
-- nginx request that may yield) | nil, phase = name of an nginx phase that forbids waiting |
-- nil}.
local function strategy(check_interval, acq)
  local phase = M.nginx_phase()
  if phase then
    if YIELDABLE_PHASES[phase] then
      return {yields = true, queue = true}
    elseif phase ~= "init" then
      return {yields = false, phase = phase}
    end
  elseif scheduler_sleep and can_yield_coroutine() then
    return {sleep = backoff_sleeper(scheduler_sleep, check_interval), yields = true}
  end
  return {sleep = blocking_sleeper(acq), yields = false}
end

-- Waiting for a lock that this Lua state holds itself could never end.
local function deadlock(path, same_owner, holder_pid)
  local by = holder_pid and string.format(" by process %d", holder_pid) or ""
  local why = same_owner and "this owner already holds it through another lock object"
    or "another coroutine of this Lua state holds it and this wait cannot yield (see "
      .. "portalock.set_scheduler)"
  return errors.new("AlreadyLocked", string.format("'%s' is locked%s: %s, so waiting would "
    .. "deadlock", path, by, why), {path = path, holder_pid = holder_pid})
end

local function phase_error(path, phase)
  return errors.new("LockException", string.format("cannot wait for '%s' in the '%s' phase: "
    .. "ngx.sleep is disabled there (use timeout = 0 or fail_when_locked)", path, phase),
    {path = path})
end

-- Gives the wait up: closes what the acquisition kept (a no-op when it kept nothing).
local function give_up(acq, err)
  acq:give_up()
  return nil, err
end

-- The loop of M.acquire under the strategy `how`.
local function drive(path, attempt, acq, how)
  while true do
    local status, detail, next_attempt, holder_pid = attempt()
    if status == "acquired" then
      return true
    elseif status == "failed" then
      return nil, detail
    end
    local held = status == "in_state"
    if held then
      if detail then
        return give_up(acq, deadlock(path, true, holder_pid))
      end
      status, detail, next_attempt = acq:held()
      if not status then
        return nil, errors.from_core(detail)
      end
    end
    if how.phase then
      return give_up(acq, phase_error(path, how.phase))
    elseif held and not how.yields then
      return give_up(acq, deadlock(path, false, holder_pid))
    end
    how.sleep(detail, next_attempt)
  end
end

-- Waits in this worker's queue for `key` (see portalock.nginx): attempts only in its turn;
-- before that, the policy step without an attempt (acq:held) keeps the deadline.
local function drive_in_turn(path, key, attempt, acq, how)
  local waiter = nginx.join(key, nginx.current_request())
  how.sleep = function(_, next_attempt)
    backoff_sleeps = backoff_sleeps + 1
    nginx.sleep(waiter, next_attempt, core.monotonic)
  end
  local ok, done, err = pcall(drive, path, function()
    if not nginx.may_try(waiter, core.monotonic()) then
      return "in_state", false
    end
    return attempt()
  end, acq, how)
  nginx.leave(waiter)
  if not ok then
    acq:give_up()
    error(done, 0)
  end
  return done, err
end

--- Drives the acquisition `acq` (core: h:begin(...)) until it acquires, fails for good, or
--- gives up. attempt() runs one step: "acquired" | "sleep", fd, next_attempt | "in_state",
--- same_owner, nil, holder_pid (held by another owner of this state, which the core is not
--- asked about) | "failed", err. A step that gives up or fails has ended the wait already.
--- `key` names what is waited for to the nginx worker's queue (default: `path`).
--- Returns true or nil, err.
function M.acquire(path, attempt, acq, key)
  local how = strategy(acq:check_interval(), acq)
  if how.queue then
    return drive_in_turn(path, key or path, attempt, acq, how)
  end
  return drive(path, attempt, acq, how)
end

--- acquire() for an acquisition whose every attempt is the core's step (no holder inside this
--- Lua state to consider): the semaphores and the Redis grants. Returns true or nil, err.
function M.acquire_steps(path, acq, key)
  return M.acquire(path, function()
    local status, detail, next_attempt = acq:step()
    if status == nil then
      return "failed", errors.from_core(detail)
    end
    return status, detail, next_attempt
  end, acq, key)
end

return M
