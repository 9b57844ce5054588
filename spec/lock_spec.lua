local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local testhelper = require "portalock_testhelper"
local wait = require "portalock.wait"

-- How many waits of this process have ended so far, however they ended.
local function waits_ended()
  local c = wait.counters()
  return c.event + c.kernel + c.timer + c.deadline + c.signal
end

describe("Lock", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/file.lock"
  end)

  after_each(function()
    portalock.set_scheduler(nil)
    helper.rmtree(dir)
  end)

  it("returns a genuine io handle whose descriptor holds the lock", function()
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    assert.are.equal("file", io.type(fh))
    assert.is_truthy(fh:write("hello\n")) -- the file on 5.2+, true on 5.1
    fh:flush()
    assert.are.equal("hello\n", helper.read(path))
    assert.is_true(lock:locked())
    assert.are.equal(1, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
    assert.is_true(lock:release())
    assert.is_false(lock:locked())
    assert.are.equal("closed file", io.type(fh))
    assert.are.equal(0, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
  end)

  it("joins a relative filename to the working directory and keeps it read-only", function()
    local lock = portalock.Lock("some/relative.lock")
    assert.are.equal("/", lock.filename:sub(1, 1))
    assert.are.equal("/some/relative.lock", lock.filename:sub(-#"/some/relative.lock"))
    assert.has_error(function() lock.filename = "other" end)
    assert.matches("read%-only", select(2, pcall(function() lock.filename = "other" end)))
  end)

  it("exposes timeout, check_interval and fail_when_locked as read-only fields", function()
    local cases = {
      {portalock.Lock(path), 5, 0.25, false},
      {portalock.Lock(path, {timeout = 2, check_interval = 0.5, fail_when_locked = true}), 2, 0.5, true},
      {portalock.RLock(path, {timeout = 0, check_interval = 0.1}), 0, 0.1, false},
      {portalock.TemporaryFileLock(path), 5, 0.25, true},
      {portalock.PidFileLock(dir .. "/app.pid", {fail_when_locked = false, timeout = 1}), 1, 0.25, false},
    }
    for i, case in ipairs(cases) do
      local lock = case[1]
      assert.are.equal(case[2], lock.timeout, "case " .. i)
      assert.are.equal(case[3], lock.check_interval, "case " .. i)
      assert.are.equal(case[4], lock.fail_when_locked, "case " .. i)
      for _, field in ipairs({"timeout", "check_interval", "fail_when_locked"}) do
        assert.matches("read%-only", select(2, pcall(function() lock[field] = 1 end)))
      end
    end
  end)

  for _, backend in ipairs({"flock", "posix"}) do
    it("waits with check_interval = 0 without spinning (" .. backend .. ")", function()
      -- The holder lets go when told, half a second after a releaser starts (not a fixed time
      -- after it took the lock, which a loaded machine could spend before the wait began).
      local holder = helper.hold("Lock", path, dir, {backend = backend})
      local lock = portalock.Lock(path, {check_interval = 0, timeout = 10, backend = backend})
      assert.are.equal(0, lock.check_interval)
      assert.is_nil((lock:acquire({timeout = 0}))) -- contended when the wait starts
      helper.spawn("sleep 0.5 && touch " .. helper.quote(dir .. "/release"))
      local cpu, started = os.clock(), core.monotonic()
      assert(lock:acquire())
      local waited, used = core.monotonic() - started, os.clock() - cpu
      assert.is_true(waited > 0.1, "did not wait: " .. waited)
      -- re-checking every 1 ms costs little; a busy loop would burn the whole wait
      assert.is_true(used < waited / 2, string.format("%.3f s of CPU in a %.3f s wait", used, waited))
      assert(lock:release())
      assert.is_true(helper.wait_until(function() return not helper.alive(holder) end, 15))
    end)
  end

  it("opens one io handle for all the attempts of a wait (Lua 5.1, LuaJIT)", function()
    if core.STREAMS then
      pending("Lua 5.2+ makes the io handle after locking: no handle to open before an attempt")
      return
    end
    -- Each attempt locks onto an io handle on /dev/null: one kept from the last contended
    -- attempt, not a new one opened between the wake-up and the lock.
    local holder = helper.hold("Lock", path, dir)
    local lock = portalock.Lock(path, {check_interval = 0.01, timeout = 10})
    helper.spawn("sleep 0.3 && touch " .. helper.quote(dir .. "/release"))
    local open, opens = io.open, 0
    io.open = function(name, ...) -- luacheck: ignore 122
      if name == "/dev/null" then
        opens = opens + 1
      end
      return open(name, ...)
    end
    local waits = waits_ended()
    local ok, fh = pcall(lock.acquire, lock)
    io.open = open -- luacheck: ignore 122
    assert(ok, fh)
    assert(fh)
    assert.is_true(waits_ended() - waits > 1, "the acquire woke more than once")
    assert.are.equal(1, opens)
    assert(lock:release())
    assert.is_true(helper.wait_until(function() return not helper.alive(holder) end, 15))
  end)

  it("closes the kept io handle of a wait that gives up", function()
    local holder = helper.hold("Lock", path, dir)
    local lock = portalock.Lock(path, {check_interval = 0.01})
    local before = testhelper.fd_count()
    assert.is_nil((lock:acquire({timeout = 0.1})))
    assert.are.equal(before, testhelper.fd_count())
    helper.kill(holder)
  end)

  it("closes the kept io handle of a wait ended by an error raised in its sleep", function()
    -- As Ctrl-C does on 5.1 and LuaJIT: their SIGINT hook raises as the sleep returns (here as
    -- it is called, which LuaJIT hooks too).
    local holder = helper.hold("Lock", path, dir)
    local lock = portalock.Lock(path, {check_interval = 0.01, timeout = 10})
    local sleep = debug.getregistry()["portalock.core.acquisition"].__index.sleep
    collectgarbage()
    collectgarbage()
    local before = testhelper.fd_count()
    debug.sethook(function()
      if debug.getinfo(2, "f").func == sleep then
        debug.sethook()
        error("interrupted", 0)
      end
    end, "c")
    local ok, err = pcall(lock.acquire, lock)
    debug.sethook()
    assert.is_false(ok)
    assert.are.equal("interrupted", err)
    assert.are.equal(before, testhelper.fd_count())
    helper.kill(holder)
  end)

  it("does not touch the file system before acquire", function()
    local lock = portalock.Lock(path)
    assert.is_false(helper.exists(path))
    assert(lock:acquire())
    assert.is_true(helper.exists(path))
    lock:release()
  end)

  it("returns the same handle when the holding coroutine acquires again", function()
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    assert.are.equal(fh, lock:acquire({timeout = 0}))
    assert.is_true(lock:release())
    assert.is_false(lock:locked())
  end)

  it("treats releasing a lock that is not held as a no-op", function()
    local lock = portalock.Lock(path)
    assert.is_true(lock:release())
    assert(lock:acquire())
    assert.is_true(lock:release())
    assert.is_true(lock:release())
  end)

  it("is released when the user closes the handle", function()
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    fh:close()
    assert.is_false(lock:locked())
    assert.are.equal(0, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
    local again = assert(lock:acquire())
    assert.are.equal("file", io.type(again))
    assert.is_true(lock:release())
  end)

  it("reports a missing directory as LockException ENOENT at once", function()
    local lock = portalock.Lock(dir .. "/missing/file.lock", {timeout = 5})
    local fh, err = lock:acquire()
    assert.is_nil(fh)
    assert.are.equal("LockException", err.kind)
    assert.are.equal(2, err.errno)
    assert.are.equal("open '" .. dir .. "/missing/file.lock': No such file or directory: the "
      .. "directory '" .. dir .. "/missing' does not exist", err.message)
    assert.is_false(err:is(portalock.AlreadyLocked))
  end)

  it("fails with ELOOP on a symlink planted as the lock path, leaving its target alone", function()
    local target = dir .. "/target"
    helper.write(target, "precious")
    assert.are.equal(0, helper.run("ln -s " .. helper.quote(target) .. " " .. helper.quote(path)))
    local lock = portalock.Lock(path, {mode = "w"})
    local fh, err = lock:acquire({timeout = 0})
    assert.is_nil(fh)
    assert.are.equal("LockException", err.kind)
    assert.are.equal(40, err.errno) -- ELOOP on Linux
    assert.are.equal("precious", helper.read(target))
  end)

  it('truncates in "w" mode only once the lock is held, then writes at its position', function()
    helper.write(path, "old content")
    local lock = portalock.Lock(path, {mode = "w"})
    local fh = assert(lock:acquire())
    assert.are.equal("", helper.read(path))
    fh:write("new")
    fh:flush()
    assert.are.equal("new", helper.read(path))
    lock:release()
  end)

  it("opens an existing file without truncating it in the default mode", function()
    helper.write(path, "keep")
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    fh:write("+more")
    lock:release()
    assert.are.equal("keep+more", helper.read(path))
  end)

  it("reads through the handle in r mode", function()
    helper.write(path, "contents")
    local lock = portalock.Lock(path, {mode = "r", flags = portalock.LOCK_SH + portalock.LOCK_NB})
    local fh = assert(lock:acquire())
    assert.are.equal("contents", fh:read("*a"))
    lock:release()
  end)

  it("lets shared locks of two objects coexist and excludes an exclusive one", function()
    local shared = portalock.LOCK_SH + portalock.LOCK_NB
    local a = portalock.Lock(path, {flags = shared, mode = "r+"})
    local b = portalock.Lock(path, {flags = shared, mode = "r+"})
    helper.write(path, "")
    assert(a:acquire())
    assert(b:acquire())
    local c = portalock.Lock(path)
    local fh, err = c:acquire({timeout = 0})
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
    a:release()
    b:release()
    assert(c:acquire({timeout = 0}))
    c:release()
  end)

  describe("inside one Lua state", function()
    it("refuses at once when another coroutine holds it and waiting cannot yield", function()
      local lock = portalock.Lock(path)
      assert(lock:acquire())
      local started = os.time()
      local fh, err = coroutine.wrap(function() return lock:acquire({timeout = 5}) end)()
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.matches("deadlock", err.message)
      assert.is_true(os.time() - started <= 1)
      lock:release()
    end)

    it("gives up at the first contention with another coroutine, as with another process", function()
      local lock = portalock.Lock(path)
      assert(lock:acquire())
      for _, opts in ipairs({{timeout = 0}, {fail_when_locked = true}}) do
        local fh, err = coroutine.wrap(function() return lock:acquire(opts) end)()
        assert.is_nil(fh)
        assert.is_true(err:is(portalock.AlreadyLocked))
        assert.matches("' is locked: gave up at the first contention (", err.message, 1, true)
      end
      lock:release()
    end)

    it("refuses at once when the same coroutine holds the file through another object", function()
      local first = portalock.Lock(path)
      assert(first:acquire())
      local fh, err = portalock.Lock(path):acquire({timeout = 5})
      assert.is_nil(fh)
      assert.matches("deadlock", err.message)
      first:release()
      local second = portalock.Lock(path)
      assert(second:acquire({timeout = 0}))
      second:release()
    end)

    it("recognises the file behind another spelling of its path", function()
      assert.are.equal(0, helper.run("ln -s " .. helper.quote(dir) .. " " .. helper.quote(dir .. "/via")))
      local first = portalock.Lock(path)
      assert(first:acquire())
      for _, alias in ipairs({dir .. "/./file.lock", dir .. "/via/file.lock"}) do
        local started = os.time()
        local fh, err = portalock.Lock(alias):acquire({timeout = 5})
        assert.is_nil(fh)
        assert.matches("deadlock", err.message)
        assert.is_true(os.time() - started <= 1)
      end
      first:release()
    end)

    it("waits through a scheduler until the other coroutine releases", function()
      local lock = portalock.Lock(path)
      local log = {}
      portalock.set_scheduler(function(seconds) coroutine.yield(seconds) end)
      local holder = coroutine.create(function()
        assert(lock:acquire())
        log[#log + 1] = "holder acquired"
        coroutine.yield(0)
        coroutine.yield(0)
        log[#log + 1] = "holder releases"
        lock:release()
      end)
      local waiter = coroutine.create(function()
        local fh = assert(lock:acquire({timeout = 5}))
        log[#log + 1] = "waiter acquired " .. io.type(fh)
        lock:release()
      end)
      local ready = {holder, waiter}
      while #ready > 0 do
        local co = table.remove(ready, 1)
        assert(coroutine.resume(co))
        if coroutine.status(co) ~= "dead" then
          ready[#ready + 1] = co
        end
      end
      assert.are.same({"holder acquired", "holder releases", "waiter acquired file"}, log)
    end)

    it("times out through a scheduler as it would across processes", function()
      local lock = portalock.Lock(path)
      assert(lock:acquire())
      portalock.set_scheduler(function(seconds) coroutine.yield(seconds) end)
      local waiter = coroutine.create(function() return lock:acquire({timeout = 0.2}) end)
      local ok, fh, err = coroutine.resume(waiter)
      local slept = 0
      while coroutine.status(waiter) ~= "dead" do
        slept = slept + fh
        helper.sleep(fh)
        ok, fh, err = coroutine.resume(waiter)
      end
      assert.is_true(ok)
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(slept > 0.1)
      lock:release()
    end)
  end)

  if _VERSION == "Lua 5.4" then
    it("releases at the end of a <close> scope", function()
      local scoped = assert(load([[
        local portalock, path = ...
        do
          local lock <close> = portalock.Lock(path)
          assert(lock:acquire())
          assert(lock:locked())
        end
        return portalock.Lock(path):acquire({timeout = 0})
      ]]))
      local fh = scoped(portalock, path)
      assert.are.equal("file", io.type(fh))
      fh:close()
    end)

    it("releases when an error unwinds a <close> scope", function()
      local scoped = assert(load([[
        local portalock, path = ...
        local lock <close> = portalock.Lock(path)
        assert(lock:acquire())
        error("boom")
      ]]))
      assert.has_error(function() scoped(portalock, path) end)
      local fh = assert(portalock.Lock(path):acquire({timeout = 0}))
      fh:close()
    end)
  end
end)
