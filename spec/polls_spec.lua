-- Waits that poll: a wait that yields to a scheduler (or ngx.sleep) keeps nothing open while it
-- sleeps, so that a coroutine closed or dropped in the middle of acquire leaks nothing; its
-- back-off asks the sleep function for whole milliseconds, never less than one; and a wait
-- that gives up at its first contention makes no inotify instance.
local portalock = require "portalock"
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"
local testhelper = require "portalock_testhelper"

-- Whether nginx's truncation, (ngx_msec_t)(seconds * 1000), keeps all of `seconds`: a whole
-- number of milliseconds (up to the rounding of a double), at least one.
local function whole_ms(seconds)
  local ms = math.floor(seconds * 1000)
  return ms >= 1 and seconds * 1000 - ms < 1e-6
end

describe("a polling wait", function()
  local dir

  before_each(function()
    dir = helper.tmpdir()
  end)

  after_each(function()
    portalock.set_scheduler(nil)
    collectgarbage("restart")
    helper.rmtree(dir)
  end)

  -- Something held by another process, and a way to make a waiter for it.
  local targets = {
    Lock = function()
      local path = dir .. "/held.lock"
      return helper.hold("Lock", path, dir), function() return portalock.Lock(path) end
    end,
    RLock = function()
      local path = dir .. "/held.lock"
      return helper.hold("RLock", path, dir), function() return portalock.RLock(path) end
    end,
    PidFileLock = function()
      local path = dir .. "/held.pid"
      return helper.hold("PidFileLock", path, dir), function()
        return portalock.PidFileLock(path, {fail_when_locked = false})
      end
    end,
    NamedBoundedSemaphore = function()
      local ready = dir .. "/ready"
      local pid = helper.spawn(helper.script_command("bounded_hold", dir, "held", "1", ready))
      assert(helper.wait_until(function() return helper.exists(ready) end, 10))
      return pid, function()
        return portalock.NamedBoundedSemaphore(1, {name = "held", directory = dir})
      end
    end,
  }

  for _, class in ipairs({"Lock", "RLock", "PidFileLock", "NamedBoundedSemaphore"}) do
    it(string.format("on a %s leaves nothing open when its coroutine is abandoned", class),
      function()
        local holder, new_waiter = targets[class]()
        portalock.set_scheduler(function(seconds) coroutine.yield(seconds) end)
        -- Nothing may be freed by a collection: the test is that nothing needs one.
        collectgarbage("collect")
        collectgarbage("stop")
        local fds, inotify = testhelper.fd_count(), testhelper.inotify_count()
        local waiters, coroutines = {}, {}
        for i = 1, 20 do
          waiters[i] = new_waiter()
          coroutines[i] = coroutine.create(function()
            return waiters[i]:acquire({timeout = 10, check_interval = 0.01})
          end)
          local ok, slept = coroutine.resume(coroutines[i])
          assert(ok, slept)
          assert.are.equal("suspended", coroutine.status(coroutines[i]))
          assert.is_number(slept) -- it waits: the holder holds
        end
        -- abandoned: closed where Lua can (5.4), else merely never resumed again
        for _, co in ipairs(coroutines) do
          if coroutine.close then
            assert(coroutine.close(co))
          end
        end
        assert.are.equal(fds, testhelper.fd_count())
        assert.are.equal(inotify, testhelper.inotify_count())
        helper.kill(holder)
      end)
  end

  it("asks the scheduler for whole milliseconds, never less than one", function()
    local holder = helper.hold("Lock", dir .. "/held.lock", dir)
    local asked = {}
    portalock.set_scheduler(function(seconds)
      asked[#asked + 1] = seconds
      coroutine.yield(seconds)
    end)
    -- A check_interval that is no whole number of milliseconds, and a timeout whose deadline
    -- falls between two of the back-off's steps.
    local lock = portalock.Lock(dir .. "/held.lock", {check_interval = 0.0155, timeout = 0.0505})
    local waiter = coroutine.create(function() return lock:acquire() end)
    local ok, slept, err = coroutine.resume(waiter)
    while coroutine.status(waiter) == "suspended" do
      helper.sleep(slept)
      ok, slept, err = coroutine.resume(waiter)
    end
    assert.is_true(ok)
    assert.is_nil(slept)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(#asked >= 4, #asked .. " sleeps")
    assert.are.equal(1, math.floor(asked[1] * 1000)) -- the back-off starts at 1 ms
    for i, seconds in ipairs(asked) do
      assert.is_true(whole_ms(seconds), string.format("sleep %d asked for %.17g s", i, seconds))
    end
    helper.kill(holder)
  end)

  it("gives up at the first contention without an inotify instance", function()
    -- strace sees an instance that the attempt makes and closes within the same call
    if helper.run("command -v strace > /dev/null") ~= 0 then
      pending("strace is not installed")
      return
    end
    local path = dir .. "/held.lock"
    local holder = helper.hold("Lock", path, dir)
    local trace = dir .. "/strace.log"
    local code = [[
      local portalock = require "portalock"
      local path = ...
      for _, opts in ipairs({{fail_when_locked = true}, {timeout = 0}}) do
        for _ = 1, 5 do
          local fh, err = portalock.Lock(path):acquire(opts)
          assert(fh == nil and err.kind == "AlreadyLocked", tostring(err))
        end
      end
      local fh, err = portalock.TemporaryFileLock(path):acquire()
      assert(fh == nil and err.kind == "AlreadyLocked", tostring(err))
    ]]
    -- The sanitizer CI preloads libasan for the interpreter, not for strace.
    local preload = os.getenv("LD_PRELOAD")
    local strace = (preload and "env -u LD_PRELOAD strace -E LD_PRELOAD=" .. helper.quote(preload)
      or "strace") .. " -f -qq -e trace=inotify_init,inotify_init1 -o " .. helper.quote(trace)
    local output, status = helper.capture(strace .. " " .. helper.lua_command(code, path))
    if status ~= 0 and output:match("ptrace") then
      pending("strace cannot trace here: " .. output)
      return
    end
    assert.are.equal(0, status, output)
    assert.are.equal("", helper.read(trace))
    helper.kill(holder)
  end)
end)

describe("a wait inside a real nginx", function()
  local missing = nginx.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local dir, server

  setup(function()
    dir = helper.tmpdir()
    server = nginx.start({
      workers = 1, -- /state answers for the worker that waits
      http = "  lua_shared_dict state 1m;",
      locations = [[
    location = /wait {
      content_by_lua_block {
        local portalock = require "portalock"
        local state = ngx.shared.state
        local lock = portalock.Lock(ngx.var.arg_path, {timeout = tonumber(ngx.var.arg_timeout),
          check_interval = 0.05})
        state:set("waiting", 1)
        local fh, err = lock:acquire()
        state:set("waiting", 0)
        ngx.say(fh and "acquired" or err.kind)
        if fh then
          lock:release()
        end
      }
    }
    location = /state {
      content_by_lua_block {
        ngx.say(ngx.shared.state:get("waiting") or 0, " ", ngx.worker.pid())
      }
    }
]],
    })
  end)

  teardown(function()
    if server then
      server:stop()
    end
    helper.rmtree(dir)
  end)

  -- What process `pid` has open: its inotify instances, and its descriptors of `path`.
  local function open_in(pid, path)
    local listing = assert(helper.capture("ls -l /proc/" .. pid .. "/fd"))
    local inotify, files = 0, 0
    for target in listing:gmatch("%-> ([^\n]+)") do
      inotify = inotify + (target == "anon_inode:inotify" and 1 or 0)
      files = files + (target == path and 1 or 0)
    end
    return inotify, files
  end

  it("keeps no watch and no lock file open while it yields, and never calls ngx.sleep(0)",
    function()
      local path = server:lock_file("held.lock")
      local holder = helper.hold("Lock", path, dir)
      local response = server:get_async("/wait?timeout=1&path=" .. path)
      local worker
      assert(helper.wait_until(function()
        local waiting, pid = (server:get("/state") or ""):match("^(%d) (%d+)\n$")
        worker = pid
        return waiting == "1"
      end, 5), "the request never started waiting")
      for _ = 1, 5 do
        local inotify, files = open_in(worker, path)
        if files > 0 then -- an attempt may be under way: it lasts microseconds
          helper.sleep(0.005)
          inotify, files = open_in(worker, path)
        end
        assert.are.equal(0, inotify, "inotify instances of the waiting worker")
        assert.are.equal(0, files, "descriptors of the lock file in the waiting worker")
        helper.sleep(0.1)
      end
      assert.are.equal("AlreadyLocked\n", response(10))
      assert.is_nil(server:error_log():match("ngx%.sleep%(0%)[^\n]*"))
      helper.kill(holder)
    end)
end)
