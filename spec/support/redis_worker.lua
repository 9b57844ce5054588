-- A worker process of the Redis fault suite: takes grants of a RedisLock (or, with maximum > 1,
-- a RedisSemaphore) and logs each event for spec/support/redis_checker.lua.
-- usage: redis_worker.lua ROLE URL NAME LOG [KEY=VALUE...]
--   rounds  `rounds` times: acquire, (lock) a fenced write, hold `hold` seconds, release
--   hold    acquire, (lock) a fenced write, write the token to `ready`, then hold until
--           `seconds` pass or the file `release` exists, checking the grant all along (and,
--           with `work`, making a fenced write every `work` seconds while the check finds it
--           held); when it is lost, log it and, once the file `write_gate` exists (if given),
--           make one more fenced write with the lost grant, then stop
-- Options: ttl, maximum (default 1), timeout (default 60), hold, rounds, seconds, work, ready,
-- release, write_gate; fork=1 (hold): fork a child that writes its pid and what check() and
-- release() say to `child`, then sleeps until killed; ensure=1 (hold): ensure() before the
-- release; opened (hold): open the session first, then write `opened`; start (hold): wait for
-- the file `start` before acquiring.
-- stdout: "granted TOKEN", "lost REASON", "write_ok", "write_rejected", "write_failed MESSAGE",
-- "released", "acquire_failed KIND MESSAGE".
local portalock = require "portalock"
local core = require "portalock.core"
local checker = require "spec.support.redis_checker"
local helper = require "spec.support.helper"

local role, url, name, log = ...
local opts = {}
for i = 5, select("#", ...) do
  local key, value = (select(i, ...)):match("^([%w_]+)=(.*)$")
  opts[key] = tonumber(value) or value
end

local FENCE_KEY = "fence:" .. name
local GATE_SECONDS = 30
local maximum = opts.maximum or 1
local settings = {redis = url, ttl = opts.ttl, timeout = opts.timeout or 60}
local lock = maximum == 1 and portalock.RedisLock(name, settings)
  or portalock.RedisSemaphore(name, maximum, settings)

local function say(...)
  io.write(table.concat({...}, " "), "\n")
  io.flush()
end

local function await(path)
  assert(helper.wait_until(function() return helper.exists(path) end, GATE_SECONDS), "no " .. path)
end

-- A fenced write with the grant's token (semaphores have no single writer to fence), logged
-- at `decided`: when the worker found it still held the grant (default: now).
local function fenced_write(token, decided)
  if maximum ~= 1 then
    return
  end
  decided = decided or core.monotonic()
  local written, err = lock:fenced_write(FENCE_KEY, tostring(core.getpid()))
  if written == nil then
    say("write_failed", tostring(err))
    return
  end
  local event = written and "write_ok" or "write_rejected"
  checker.record(log, event, token, nil, decided)
  say(event)
end

local function acquire()
  local ok, err = lock:acquire()
  if not ok then
    say("acquire_failed", err.kind, err.message)
    os.exit(1)
  end
  checker.record(log, "grant", lock.token)
  say("granted", lock.token)
  return lock.token
end

-- Logs the release (before making it: the logged hold lies within the real one) or the loss.
local function finish(token)
  local held, why = lock:check()
  if held then
    checker.record(log, "release", token)
    assert(lock:release())
    say("released")
  else
    checker.record(log, "lost", token)
    say("lost", why)
    lock:release()
  end
end

local function fork_child()
  local testhelper = require "portalock_testhelper"
  local pid = testhelper.fork()
  if pid == 0 then
    local held, why = lock:check()
    local released, err = lock:release()
    helper.write(opts.child, string.format("%d %s %s %s %s\n", core.getpid(), tostring(held), tostring(why),
      tostring(released), err and err.kind or "-"))
    while true do
      helper.sleep(60)
    end
  end
end

local function hold()
  if opts.opened then
    -- Opens the session (a grant of another name) before the acquisition that is watched.
    local other = portalock.RedisLock(name .. ":opening", settings)
    assert(other:acquire())
    other:release()
    helper.write(opts.opened, "")
  end
  if opts.start then
    await(opts.start)
  end
  local token = acquire()
  fenced_write(token)
  if opts.fork == 1 then
    fork_child()
  end
  if opts.ready then
    helper.write(opts.ready, tostring(token))
  end
  local deadline = core.monotonic() + (opts.seconds or 60)
  local next_write = opts.work and core.monotonic() + opts.work
  while core.monotonic() < deadline and not (opts.release and helper.exists(opts.release)) do
    local decided = core.monotonic()
    local held, why = lock:check()
    if not held then
      checker.record(log, "lost", token)
      say("lost", why)
      if opts.write_gate then
        await(opts.write_gate)
        fenced_write(token)
      end
      lock:release()
      return
    end
    if next_write and decided >= next_write then
      fenced_write(token, decided)
      next_write = decided + opts.work
    end
    helper.sleep(0.01)
  end
  if opts.ensure == 1 then
    local ok, err = lock:ensure()
    say("ensure", tostring(ok), err and err.message or "-")
  end
  finish(token)
end

local function rounds()
  for _ = 1, opts.rounds do
    local token = acquire()
    fenced_write(token)
    if opts.hold then
      helper.sleep(opts.hold)
    end
    finish(token)
  end
end

if role == "hold" then
  hold()
elseif role == "rounds" then
  rounds()
else
  error("unknown role " .. tostring(role))
end
