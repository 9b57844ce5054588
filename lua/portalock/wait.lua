--- The waiting loop over a core acquisition (portalock_step in portalock.h): C decides when to
--- give up (and says so in the AlreadyLocked error), when to try again and on what to sleep;
--- this loop chooses only how to sleep, once per wait, before its first attempt (M.begin):
---   * inside OpenResty, in a phase that may yield: in the worker's queue for what is waited
---     for, in arrival order (portalock.nginx), polling in its turn; in `init` the wait may
---     block; in any other phase it fails at its first contention;
---   * with a scheduler plugged in (portalock.set_scheduler) and a coroutine that can yield:
---     the scheduler's sleep function, backing off from 1 ms up to check_interval in whole
---     milliseconds;
---   * otherwise the engine's own blocking sleep (acq:sleep), the one a C wait takes: it wakes
---     when the lock file is closed by its holder, or when the kernel grants the lock, or when
---     a semaphore count is posted (see portalock.h, portalock_wait); a signal returns it to
---     Lua (so Ctrl-C hooks run).
--- A wait that cannot block polls (acq:polls(), told before its first attempt): no attempt
--- makes a watch that nobody would read, and nothing stays open while it sleeps, so that a
--- coroutine closed or dropped in the middle of a wait, or an aborted request, leaks nothing.
--- And the outcomes only Lua knows: the lock held by another owner of this Lua state.
local core = require "portalock.core"
local errors = require "portalock.errors"
local nginx = require "portalock.nginx"

local M = {}

-- {yields = true, scheduler = sleep(seconds)}: how a wait under the plugged-in scheduler
-- sleeps (see M.begin), or nil.
local scheduled
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
  scheduled = sleep and {yields = true, scheduler = sleep}
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

-- The seconds a back-off sleep asks for: `seconds` rounded up to whole milliseconds, at least
-- one. nginx truncates a sleep's seconds to whole milliseconds ((ngx_msec_t)(seconds * 1000)),
-- and so may a scheduler: less than 1 ms would be a 0 ms sleep (a spin; in nginx a warning in
-- error.log per call), and k / 1000 may fall an ulp short of k ms, which the truncation would
-- make k - 1 (it is nudged up by an ulp). Rounding up may take a sleep up to 1 ms past the
-- deadline: the next step then gives up.
function M.whole_ms(seconds)
  local ms = math.max(1, math.ceil(seconds * 1000 - 1e-6))
  local rounded = ms / 1000
  if rounded * 1000 < ms then
    rounded = rounded + rounded * 2^-52
  end
  return rounded
end

local function backoff_sleeper(sleep, check_interval)
  local delay = 0.001
  return function(_, next_attempt)
    local seconds = M.whole_ms(math.min(delay, next_attempt - core.monotonic()))
    delay = math.min(delay * 2, check_interval)
    backoff_sleeps = backoff_sleeps + 1
    sleep(seconds)
  end
end

-- `abandon` (may be nil) closes what the attempts keep outside the acquisition.
local function blocking_sleeper(acq, abandon)
  return function(_, next_attempt)
    -- A hook's error (Ctrl-C) raised as the sleep returns must not strand what the sleep may
    -- have taken (a lock granted by the kernel, a semaphore count): give the wait up first.
    local ok, err = pcall(acq.sleep, acq, next_attempt)
    if not ok then
      acq:give_up()
      if abandon then
        abandon()
      end
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

--- True when a wait under `how` (M.begin's answer) for `key` starting now would queue behind
--- another waiter of this nginx worker (see portalock.nginx): the caller then skips its first
--- attempt.
function M.queued(how, key)
  return how.queue and nginx.waiting(key) or false
end

-- How a wait that blocks sleeps (in acq:sleep): see M.begin.
local BLOCKS = {yields = false}

--- Decides how the wait on `acq` (core: h:begin(...)) sleeps, before its first attempt, and
--- declares a wait that cannot block a polling one (acq:polls()). Returns the `how` that
--- M.wait takes: {yields = true, queue = true} in an nginx request that may yield (it waits
--- in the worker's queue; one that does not wait, acq:waits() false, tries at once, ahead of
--- that queue: queue = false), {yields = true, scheduler = sleep(seconds)} under the plugged-in
--- scheduler, {yields = false} for a wait that blocks, {yields = false, phase = name} in an
--- nginx phase that forbids waiting.
function M.begin(acq)
  local how = BLOCKS
  local phase = M.nginx_phase()
  if phase then
    if YIELDABLE_PHASES[phase] then
      how = {yields = true, queue = acq:waits()}
    elseif phase ~= "init" then
      how = {yields = false, phase = phase}
    end
  elseif scheduled and can_yield_coroutine() then
    how = scheduled
  end
  if how ~= BLOCKS then
    -- It sleeps on the clock, or not at all: a watch would go unread, and whatever an attempt
    -- kept open would outlive a wait abandoned between two steps (a coroutine closed or
    -- dropped, an aborted request).
    acq:polls()
  end
  return how
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

-- The loop of M.wait under `how`, from the outcome of a first attempt (none when status is
-- nil).
local function drive(path, attempt, acq, how, abandon, status, detail, next_attempt, holder_pid)
  local sleep = how.sleep
  while true do
    if status == nil then
      status, detail, next_attempt, holder_pid = attempt()
    end
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
    sleep = sleep or how.scheduler and backoff_sleeper(how.scheduler, acq:check_interval())
      or blocking_sleeper(acq, abandon)
    sleep(detail, next_attempt)
    status = nil
  end
end

-- Waits in this worker's queue for `key` (see portalock.nginx): attempts only in its turn;
-- before that, the policy step without an attempt (acq:held) keeps the deadline.
local function drive_in_turn(path, key, attempt, acq, how, abandon, ...)
  local waiter = nginx.join(key, nginx.current_request())
  how.sleep = function(_, next_attempt)
    backoff_sleeps = backoff_sleeps + 1
    nginx.nap(waiter, M.whole_ms(math.min(next_attempt - core.monotonic(), nginx.pace(waiter))))
  end
  local ok, done, err = pcall(drive, path, function()
    if not nginx.may_try(waiter, core.monotonic()) then
      return "in_state", false
    end
    return attempt()
  end, acq, how, abandon, ...)
  nginx.leave(waiter)
  if not ok then
    acq:give_up()
    if abandon then
      abandon()
    end
    error(done, 0)
  end
  return done, err
end

--- Waits out the acquisition `acq` (core: h:begin(...)) until it acquires, fails for good, or
--- gives up. attempt() runs one step: "acquired" | "sleep", fd, next_attempt | "in_state",
--- same_owner, nil, holder_pid (held by another owner of this state, which the core is not
--- asked about) | "failed", err. A step that gives up or fails has ended the wait already.
--- `key` names what is waited for to the nginx worker's queue (default: `path`); `how` is
--- M.begin(acq)'s answer, asked before the first attempt; `abandon` (may be nil) runs after
--- acq:give_up() when an error raised in a sleep (Ctrl-C) ends the wait, to close what the
--- attempts keep outside the acquisition; status, detail, next_attempt, holder_pid: the
--- outcome of a first attempt the caller made (status nil: none, the loop makes it).
--- Returns true or nil, err.
function M.wait(path, attempt, acq, key, how, abandon, status, detail, next_attempt, holder_pid)
  if how.queue then
    return drive_in_turn(path, key or path, attempt, acq, how, abandon, status, detail,
      next_attempt, holder_pid)
  end
  return drive(path, attempt, acq, how, abandon, status, detail, next_attempt, holder_pid)
end

--- M.begin and M.wait: the whole wait of `acq`, whose every attempt, the first too, is
--- attempt(). Returns true or nil, err.
function M.acquire(path, attempt, acq, key)
  local how = M.begin(acq) -- before the first attempt
  return M.wait(path, attempt, acq, key, how)
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
