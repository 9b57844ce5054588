-- Event-driven waiting: waits end when the holder lets go, never on the fallback timer.
local portalock = require "portalock"
local core = require "portalock.core"
local wait = require "portalock.wait"
local helper = require "spec.support.helper"
local testhelper = require "portalock_testhelper"
local upstream = require "spec.support.upstream"

describe("waiting", function()
  local dir

  before_each(function()
    dir = helper.tmpdir()
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  -- Two processes hand `where` back and forth `n` times each; returns their reports.
  local function hand_off(class, where, n)
    local commands = {}
    local start = string.format("%.3f", core.monotonic() + 1)
    for i = 1, 2 do
      commands[i] = "( " .. helper.script_command("handoff", class, where, tostring(n), start)
        .. " > " .. helper.quote(dir .. "/handoff." .. i .. ".log") .. " 2>&1 )"
    end
    assert.are.equal(0, helper.run(table.concat(commands, " & ") .. " & wait"))
    local timer, woken = 0, 0
    for i = 1, 2 do
      local report = helper.read(dir .. "/handoff." .. i .. ".log")
      local t, w = report:match("^timer=(%d+) woken=(%d+)\n$")
      assert.is_not_nil(t, report)
      timer, woken = timer + tonumber(t), woken + tonumber(w)
    end
    return timer, woken
  end

  local cases = {
    {"Lock", 5000}, {"RLock", 500}, {"TemporaryFileLock", 500}, {"PidFileLock", 500},
    {"NamedBoundedSemaphore", 500}, {"Semaphore", 500},
  }
  for _, case in ipairs(cases) do
    local class, n = case[1], case[2]
    it(string.format("%d %s handoffs between two processes never wake on the fallback timer",
      2 * n, class), function()
      local where = dir .. "/handoff"
      if class == "Semaphore" then
        where = "portalock-spec-wake-" .. core.getpid()
      end
      local timer, woken = hand_off(class, where, n)
      if class == "Semaphore" then
        portalock.Semaphore.unlink(where)
      end
      assert.are.equal(0, timer)
      -- they did contend: some waits ended on a release
      assert.is_true(woken > 0, "woken " .. woken)
    end)
  end

  -- flock(1) holds `path` for `seconds` (0.5), so an acquire after this certainly waits for it.
  local function held_briefly(path, seconds)
    local pid = helper.spawn(helper.peer_env .. "flock " .. helper.quote(path) .. " sleep "
      .. (seconds or 0.5))
    local probe = portalock.Lock(path, {fail_when_locked = true})
    local give_up = core.monotonic() + 10
    while probe:acquire() do
      probe:release()
      assert.is_true(core.monotonic() < give_up, "flock(1) never took the lock")
      helper.sleep(0.01)
    end
    return pid
  end

  it("counts a wait ended by a release as an event, not a timer", function()
    local path = dir .. "/one.lock"
    local pid = held_briefly(path)
    local before = wait.counters()
    local lock = portalock.Lock(path, {timeout = 20, check_interval = 30})
    assert(lock:acquire())
    lock:release()
    local after = wait.counters()
    assert.are.equal(before.timer, after.timer)
    assert.is_true(after.event + after.kernel > before.event + before.kernel)
    helper.kill(pid)
  end)

  it("blocks a wait without a timeout in the kernel queue, as a C wait does", function()
    local path = dir .. "/forever.lock"
    local pid = held_briefly(path)
    local before = wait.counters()
    local lock = portalock.Lock(path, {timeout = math.huge, check_interval = 0.01})
    collectgarbage()
    local descriptors = testhelper.fd_count()
    assert(lock:acquire())
    -- the lock file's, and no inotify instance (a wait keeps its instance until the release)
    assert.are.equal(descriptors + 1, testhelper.fd_count())
    lock:release()
    local after = wait.counters()
    -- granted by the kernel once, with no watch, never re-queued: in this thread where
    -- Ctrl-C interrupts the lock call (lua5.4), else (lua5.1's and LuaJIT's SIGINT handler
    -- restarts it) in a helper thread waited for in poll, which Ctrl-C ends
    assert.are.equal(before.kernel + 1, after.kernel)
    assert.are.equal(before.event, after.event)
    assert.are.equal(before.timer, after.timer)
    helper.kill(pid)
  end)

  it("keeps a crowded Lock's timed wait queued in the kernel past check_interval", function()
    local path = dir .. "/crowded.lock"
    local pid = held_briefly(path, 3)
    -- Closes of the file while it is held wake a waiter's watch: the wake-up loses the race,
    -- and the lock counts as crowded for a second, its waits queued in the kernel (a helper
    -- thread, for a wait with a timeout).
    local closer = helper.spawn(helper.lua_command([[
      local core = require "portalock.core"
      for _ = 1, 75 do
        local wake = core.monotonic() + 0.02
        core.wait(nil, wake, wake)
        assert(io.open(..., "rb")):close()
      end]], path))
    local lock = portalock.Lock(path, {timeout = 20})
    local before = wait.counters()
    assert.is_nil((lock:acquire({timeout = 1, check_interval = 30})))
    local crowded = wait.counters()
    assert.is_true(crowded.lost_race > before.lost_race, "the first wait never lost a race")
    assert(lock:acquire({check_interval = 0.02}))
    lock:release()
    local after = wait.counters()
    -- granted by the kernel once, never re-queued every 0.02 s, never watching
    assert.are.equal(crowded.kernel + 1, after.kernel)
    assert.are.equal(crowded.timer, after.timer)
    assert.are.equal(crowded.event, after.event)
    assert.are.equal(crowded.signal, after.signal)
    helper.kill(pid)
    helper.wait_until(function() return not helper.alive(closer) end, 10)
  end)

  it("lets Ctrl-C end a wait without a timeout: the interpreter's hook runs", function()
    local path = dir .. "/interrupted.lock"
    local holder = helper.hold("Lock", path, dir)
    local log = dir .. "/interrupted.log"
    local pid = helper.spawn(helper.lua_command([[
      local lock = require("portalock").Lock(..., {timeout = math.huge})
      io.stderr:write("waiting\n")
      lock:acquire()
      print("acquired")]], path), log)
    assert.is_true(helper.wait_until(function()
      return (helper.read(log) or ""):find("waiting", 1, true) ~= nil
    end, 10))
    helper.sleep(0.3) -- in the kernel's queue by now
    helper.kill(pid, "INT")
    local ended = helper.wait_until(function() return not helper.alive(pid) end, 5)
    helper.kill(holder)
    assert.is_true(ended, "SIGINT did not end the wait")
    local out = helper.read(log)
    assert.matches("interrupted", out)
    assert.is_nil(out:find("acquired", 1, true))
  end)

  it("keeps a timed wait queued in the kernel (a semaphore's) past check_interval", function()
    local name = "portalock-spec-queued-" .. core.getpid()
    local sem = portalock.Semaphore(0, {name = name})
    local pid = helper.spawn(helper.lua_command([[
      local core = require "portalock.core"
      local wake = core.monotonic() + 0.5
      core.wait(nil, wake, wake)
      assert(require("portalock").Semaphore(0, {name = ...}):release())]], name))
    local before = wait.counters()
    local started = core.monotonic()
    assert.is_true(sem:acquire({timeout = 20, check_interval = 0.02}))
    local after = wait.counters()
    assert.is_true(core.monotonic() - started > 0.3)
    assert.are.equal(before.kernel + 1, after.kernel)
    assert.are.equal(before.timer, after.timer) -- not every 0.02 s
    sem:release()
    portalock.Semaphore.unlink(name)
    helper.wait_until(function() return not helper.alive(pid) end, 10)
  end)

  it("lets the waiter it woke run before closing the watch of its own wait", function()
    if not upstream.have_strace() then
      pending("strace(1) cannot trace here (no ptrace?)")
      return
    end
    -- The acquire waits for flock(1), is woken by its watch and keeps the watch's inotify
    -- instance until the release, which closes it: after a sched_yield.
    local path, log = dir .. "/yield.lock", dir .. "/strace.log"
    local pid = helper.spawn(helper.peer_env .. "flock " .. helper.quote(path) .. " sleep 0.3")
    assert.is_true(helper.wait_until(function()
      return helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true") ~= 0
    end, 10), "flock(1) never took the lock")
    local chunk = [[
local portalock = require "portalock"
local lock = portalock.Lock(..., {timeout = 20, check_interval = 30})
assert(lock:acquire())
assert(lock:release())
]]
    assert.are.equal(0, helper.run("strace -qq -o " .. helper.quote(log)
      .. " -e trace=inotify_init1,sched_yield,close " .. helper.lua_command(chunk, path)))
    local calls = upstream.trace_lines(log)
    local instance
    for i, line in ipairs(calls) do
      instance = line:match("^inotify_init1%(.*%)%s+=%s+(%d+)") or instance
      if instance and line:match("^close%(" .. instance .. "%)") then
        assert.matches("^sched_yield%(%)", calls[i - 1])
        helper.kill(pid)
        return
      end
    end
    error("no inotify instance was closed: " .. table.concat(calls, "\n"))
  end)

  it("gives up a wait (timeout, fail_when_locked) without leaving a descriptor open", function()
    local path = dir .. "/held.lock"
    local pid = helper.hold("Lock", path, dir)
    local lock = portalock.Lock(path, {timeout = 0.2})
    local semaphore = portalock.NamedBoundedSemaphore(1, {name = "held", directory = dir, timeout = 0.2})
    assert(semaphore:acquire())
    local other = portalock.NamedBoundedSemaphore(1, {name = "held", directory = dir, timeout = 0.2})
    -- what earlier tests left to the collector would otherwise close during the count
    collectgarbage()
    collectgarbage()
    local before = testhelper.fd_count()
    for _, opts in ipairs({{}, {fail_when_locked = true}, {timeout = 0}}) do
      local fh, err = lock:acquire(opts)
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
    end
    assert.is_nil((other:acquire()))
    assert.are.equal(before, testhelper.fd_count())
    semaphore:release()
    helper.kill(pid)
  end)
end)
