-- Benchmark driver for bench/redis/run: portalock's RedisLock from Lua (require "portalock").
-- The same command line as driver.c:
--   serve IMPL NAME CI WAIT | uncontended IMPL NAME N | loop IMPL NAME
-- IMPL is "redis"; the server is $PORTALOCK_BENCH_REDIS (a URL). CI is a check_interval in
-- seconds or "default"; WAIT is ignored (every wait is bounded by WAIT_LIMIT only). Every other
-- option is the default. Times printed are CLOCK_MONOTONIC nanoseconds.
local portalock = require "portalock"
local core = require "portalock.core"

local WAIT_LIMIT = 120

local function now_ns()
  return math.floor(core.monotonic() * 1e9)
end

local function out(...)
  io.stdout:write(table.concat({...}, " "), "\n")
  io.stdout:flush()
end

local function cpu_ns()
  -- every thread of the process (the keep-alive thread too): utime and stime, 100 Hz
  local f = assert(io.open("/proc/self/stat"))
  local stat = f:read("a")
  f:close()
  local fields = {}
  for word in stat:match("%) (.*)"):gmatch("%S+") do
    fields[#fields + 1] = word
  end
  return (tonumber(fields[12]) + tonumber(fields[13])) * 10000000
end

local function new_lock(impl, name, ci)
  assert(impl == "redis", "IMPL must be redis")
  local opts = {redis = assert(os.getenv("PORTALOCK_BENCH_REDIS"))}
  if ci ~= "default" then
    opts.check_interval = tonumber(ci)
  end
  return portalock.RedisLock(name, opts)
end

local function serve(impl, name, ci)
  local lock = new_lock(impl, name, ci)
  local how = {timeout = WAIT_LIMIT}
  out("ready")
  for line in io.stdin:lines() do
    if line == "acquire" then
      assert(lock:acquire(how))
      out("acquired", now_ns())
    elseif line == "release" then
      local t = now_ns()
      lock:release()
      out("released", t)
    else
      break
    end
  end
end

local function uncontended(impl, name, n)
  local lock = new_lock(impl, name, "default")
  local samples, monotonic, now = {}, core.monotonic, {timeout = 0}
  for i = 1, tonumber(n) do
    local t0 = monotonic()
    if not lock:acquire(now) then
      error("the lock is held by another")
    end
    lock:release()
    samples[i] = math.floor((monotonic() - t0) * 1e9)
  end
  out("samples", table.concat(samples, " "))
end

local function loop(impl, name)
  local lock = new_lock(impl, name, "default")
  out("ready")
  local start, finish = io.stdin:read("n", "n")
  while core.monotonic() < start / 1e9 do
    core.wait(nil, start / 1e9, start / 1e9)
  end
  local cpu0, stamps = cpu_ns(), {}
  while now_ns() < finish do
    if not lock:acquire{timeout = (finish - now_ns()) / 1e9} then
      break
    end
    stamps[#stamps + 1] = now_ns()
    lock:release()
  end
  out("done", #stamps, cpu_ns() - cpu0, table.concat(stamps, " "))
end

local commands = {serve = serve, uncontended = uncontended, loop = loop}
local command = commands[arg[1]] or error("usage: driver.lua serve|uncontended|loop ...")
command(table.unpack(arg, 2))
