-- Benchmark driver for bench/run: portalock from Lua. The same command line as driver.c:
--   serve IMPL PATH CI WAIT | firstwait IMPL PATH WAIT | uncontended IMPL PATH MODE N
--   loop IMPL PATH HOLD_US CI TIMEOUT | sem IMPL NAME SLOTS POOL JOBS JOB_MS CI
-- IMPL is "portalock"; CI is a check_interval in seconds or "default". WAIT is how serve and
-- firstwait acquire: "limit" (a Lock with timeout WAIT_LIMIT and CI), "default"
-- (Lock:acquire() with the default settings), "forever" (Lock:acquire{timeout = math.huge})
-- or "fd" (portalock.lock(fh, LOCK_EX) on a file opened once: blocks in the kernel).
-- Times printed are CLOCK_MONOTONIC nanoseconds.
local portalock = require "portalock"
local core = require "portalock.core"
local driver = require "benchlib.driver"

local WAIT_LIMIT, now_ns, out = driver.WAIT_LIMIT, driver.now_ns, driver.out
local read_window, sleep_until_ns = driver.read_window, driver.sleep_until_ns
local ENOENT = 2 -- errno of a rename whose job another process claimed first

local function spin_us(us)
  local finish = core.monotonic() + us / 1e6
  while core.monotonic() < finish do -- luacheck: ignore 542
  end
end

local function cpu_ns()
  local f = assert(io.open("/proc/self/stat"))
  local stat = f:read("a")
  f:close()
  local fields = {}
  for word in stat:match("%) (.*)"):gmatch("%S+") do
    fields[#fields + 1] = word
  end
  -- utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the ")"; 100 Hz.
  return (tonumber(fields[12]) + tonumber(fields[13])) * 10000000
end

local function lock_opts(ci)
  local opts = {timeout = WAIT_LIMIT}
  if ci ~= "default" then
    opts.check_interval = tonumber(ci)
  end
  return opts
end

-- acquire() and release() functions for a WAIT (see the top of this file).
local function locker(path, ci, wait)
  if wait == "fd" then
    local fh = assert(io.open(path, "a"))
    return function()
      assert(portalock.lock(fh, portalock.LOCK_EX))
    end, function()
      portalock.unlock(fh)
    end
  end
  local lock, how
  if wait == "limit" then
    lock = portalock.Lock(path, lock_opts(ci))
  elseif wait == "default" then
    lock = portalock.Lock(path)
  elseif wait == "forever" then
    lock, how = portalock.Lock(path), {timeout = math.huge}
  else
    error(("WAIT must be limit, default, forever or fd, not %q"):format(tostring(wait)))
  end
  return function()
    assert(lock:acquire(how))
  end, function()
    lock:release()
  end
end

local function serve(_, path, ci, wait)
  driver.serve_stdin(locker(path, ci, wait))
end

local function firstwait(_, path, wait)
  local acquire, release = locker(path, "default", wait)
  out("waiting")
  acquire()
  out("acquired", now_ns())
  release()
end

local function uncontended(_, path, mode, n)
  local samples = {}
  local lock = portalock.Lock(path, {timeout = 0})
  local f = assert(io.open(path, "a"))
  local flags = portalock.LOCK_EX + portalock.LOCK_NB
  local monotonic, lock_file, unlock_file = core.monotonic, portalock.lock, portalock.unlock
  -- As driver.c: a clock read on either side, functions called directly (no lookup in a
  -- module table), a failure stops the run (no assert() call, a function call per sample).
  for i = 1, tonumber(n) do
    local t0 = monotonic()
    if mode == "open" then
      if not lock:acquire() then
        error("uncontended acquire failed")
      end
      lock:release()
    else
      if not lock_file(f, flags) then
        error("uncontended lock failed")
      end
      unlock_file(f)
    end
    samples[i] = math.floor((monotonic() - t0) * 1e9)
  end
  f:close()
  out("samples", table.concat(samples, " "))
end

local function loop(_, path, hold_us, ci, timeout)
  if timeout ~= "window" and timeout ~= "forever" then
    error(("loop: TIMEOUT must be window or forever, not %q"):format(tostring(timeout)))
  end
  local lock = portalock.Lock(path, lock_opts(ci))
  local start, finish = read_window()
  sleep_until_ns(start)
  local cpu0, stamps = cpu_ns(), {}
  local stop = finish / 1e9
  while core.monotonic() < stop do
    local left = timeout == "forever" and math.huge or math.max(0, stop - core.monotonic())
    if not lock:acquire{timeout = left} then
      break
    end
    if core.monotonic() >= stop then
      lock:release()
      break
    end
    stamps[#stamps + 1] = now_ns()
    spin_us(tonumber(hold_us))
    lock:release()
  end
  out("done", #stamps, cpu_ns() - cpu0, table.concat(stamps, " "))
end

-- Claims the next job of the shared pool as driver.c's claim_job does: true, next cursor.
local function claim_job(pool, jobs, next)
  while next <= jobs do
    local ok, err, errno = os.rename(pool .. "/" .. next, pool .. "/" .. next .. ".taken")
    if ok then
      return true, next + 1
    elseif errno ~= ENOENT then
      error(err)
    end
    next = next + 1
  end
  return false, next
end

local function sem(_, name, slots, pool, jobs, job_ms, ci)
  local opts = lock_opts(ci)
  opts.name, opts.directory = name, "/tmp"
  local semaphore = portalock.NamedBoundedSemaphore(tonumber(slots), opts)
  local start = read_window()
  sleep_until_ns(start)
  local claimed, next = claim_job(pool, tonumber(jobs), 1)
  while claimed do
    assert(semaphore:acquire())
    local t0 = now_ns()
    spin_us(tonumber(job_ms) * 1000) -- a job computes, as in driver.c
    out("job", t0, now_ns())
    semaphore:release()
    claimed, next = claim_job(pool, tonumber(jobs), next)
  end
  out("done")
end

local commands = {serve = serve, firstwait = firstwait, uncontended = uncontended, loop = loop, sem = sem}
local command = commands[arg[1]]
if not command then
  io.stderr:write("usage: see the comment at the top of bench/driver.lua\n")
  os.exit(2)
end
command((table.unpack or unpack)(arg, 2)) -- luacheck: compat
