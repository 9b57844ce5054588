-- Benchmark driver for bench/redis/run: portalock's RedisLock from Lua (require "portalock").
-- The same command line as driver.c:
--   serve IMPL NAME CI WAIT | uncontended IMPL NAME N | loop IMPL NAME
-- IMPL is "redis" ("redis-hidden": visible = false, not seen by Python portalocker); the
-- server is $PORTALOCK_BENCH_REDIS (a URL). CI is a check_interval in
-- seconds or "default"; WAIT is ignored (every wait is bounded by WAIT_LIMIT only). Every other
-- option is the default. Times printed are CLOCK_MONOTONIC nanoseconds; loop's CPU time is "-"
-- (see loop).
local portalock = require "portalock"
local core = require "portalock.core"
local driver = require "benchlib.driver"

local now_ns, out = driver.now_ns, driver.out

local function new_lock(impl, name, ci)
  assert(impl == "redis" or impl == "redis-hidden", "IMPL must be redis or redis-hidden")
  local opts = {redis = assert(os.getenv("PORTALOCK_BENCH_REDIS")), visible = impl == "redis"}
  if ci ~= "default" then
    opts.check_interval = tonumber(ci)
  end
  return portalock.RedisLock(name, opts)
end

local function serve(impl, name, ci)
  local lock = new_lock(impl, name, ci)
  driver.serve_stdin(function()
    assert(lock:acquire(driver.WAIT_LIMIT))
  end, function()
    lock:release()
  end)
end

local function uncontended(impl, name, n)
  local lock = new_lock(impl, name, "default")
  local samples, monotonic = {}, core.monotonic
  for i = 1, tonumber(n) do
    local t0 = monotonic()
    if not lock:acquire(0) then
      error("the lock is held by another")
    end
    lock:release()
    samples[i] = math.floor((monotonic() - t0) * 1e9)
  end
  out("samples", table.concat(samples, " "))
end

local function loop(impl, name)
  local lock = new_lock(impl, name, "default")
  local start, finish = driver.read_window()
  driver.sleep_until_ns(start)
  local stamps = {}
  while now_ns() < finish do
    if not lock:acquire((finish - now_ns()) / 1e9) then
      break
    end
    stamps[#stamps + 1] = now_ns()
    lock:release()
  end
  -- The CPU time "-": Lua has no getrusage and /proc/self/stat counts 10 ms ticks, so
  -- bench/redis/run sums this process's threads' times (/proc) and then closes stdin.
  out("done", #stamps, "-", table.concat(stamps, " "))
  io.stdin:read("a")
end

local commands = {serve = serve, uncontended = uncontended, loop = loop}
local command = commands[arg[1]] or error("usage: driver.lua serve|uncontended|loop ...")
command(table.unpack(arg, 2))
