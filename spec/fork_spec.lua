local portalock = require "portalock"
local helper = require "spec.support.helper"
local testhelper = require "portalock_testhelper"

-- After fork() the child holds nothing its parent held.
describe("fork", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/fork.lock"
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  local function flock_free(file)
    return helper.run(helper.peer_env .. "flock -n " .. helper.quote(file) .. " true") == 0
  end

  -- Runs `body` in a forked child; returns its exit status (0 when body returns true).
  local function in_child(body)
    local pid = testhelper.fork()
    if pid == 0 then
      local ok, passed = pcall(body)
      testhelper._exit(ok and passed and 0 or 1)
    end
    return testhelper.waitpid(pid)
  end

  it("leaves the child holding nothing: it can neither release nor re-use the parent's hold", function()
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    local status = in_child(function()
      local not_held = lock:locked() == false
      local released = lock:release() == true
      local again, err = lock:acquire({timeout = 0})
      return not_held and released and again == nil and err.kind == "AlreadyLocked"
    end)
    assert.are.equal(0, status)
    assert.is_true(lock:locked())
    assert.are.equal("file", io.type(fh))
    assert.is_false(flock_free(path))
    assert.is_true(lock:release())
  end)

  it("does not let the child prolong the parent's lock", function()
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    local forked = dir .. "/forked"
    local pid = testhelper.fork()
    if pid == 0 then
      -- fork() has returned here, so the child's fork handlers (the detaching) have run
      local marker = io.open(forked, "w")
      if marker then
        marker:close()
      end
      testhelper.sleep(2)
      testhelper._exit(0)
    end
    assert.is_true(helper.wait_until(function() return helper.exists(forked) end, 10))
    -- Closing (unlike release, which unlocks the shared open file description) frees a
    -- flock lock only when no other descriptor refers to it: the child's copy must not.
    fh:close()
    assert.is_true(flock_free(path))
    assert.is_false(lock:locked())
    assert.are.equal(0, testhelper.waitpid(pid))
  end)

  it("does not let a child forked during a wait keep the lock the parent then takes", function()
    local holder = helper.spawn(helper.peer_env .. "flock " .. helper.quote(path) .. " sleep 0.3")
    assert.is_true(helper.wait_until(function() return not flock_free(path) end, 10))
    portalock.set_scheduler(function(seconds) coroutine.yield(seconds) end)
    local lock = portalock.Lock(path, {timeout = 10, check_interval = 0.01})
    local fh
    local waiting = coroutine.create(function() fh = assert(lock:acquire()) end)
    assert(coroutine.resume(waiting)) -- contended: the wait yields to the scheduler
    local pid = testhelper.fork()
    if pid == 0 then
      testhelper.sleep(2)
      testhelper._exit(0)
    end
    while coroutine.status(waiting) ~= "dead" do
      helper.sleep(0.01)
      assert(coroutine.resume(waiting))
    end
    portalock.set_scheduler(nil)
    -- as the parent's death would: its own descriptor goes, the child's copies must not hold
    fh:close()
    assert.is_true(flock_free(path))
    assert.are.equal(0, testhelper.waitpid(pid))
    helper.wait_until(function() return not helper.alive(holder) end, 10)
  end)

  it("lets the child take a fresh lock once the parent lets go", function()
    local lock = portalock.Lock(path)
    assert(lock:acquire())
    local released = dir .. "/released"
    local pid = testhelper.fork()
    if pid == 0 then
      local ok, passed = pcall(function()
        assert(helper.wait_until(function() return helper.exists(released) end, 10))
        local fh = assert(lock:acquire({timeout = 5}))
        return io.type(fh) == "file" and lock:locked() and not flock_free(path)
      end)
      testhelper._exit(ok and passed and 0 or 1)
    end
    lock:release()
    helper.write(released, "")
    assert.are.equal(0, testhelper.waitpid(pid))
  end)

  it("never removes the parent's temporary file or PID file from the child", function()
    local temporary = portalock.TemporaryFileLock(dir .. "/t.lock")
    local pidfile = portalock.PidFileLock(dir .. "/p.pid")
    assert(temporary:acquire())
    assert(pidfile:acquire())
    local status = in_child(function()
      return temporary:release() == true and pidfile:release() == true
        and not temporary:locked() and not pidfile:locked()
    end)
    assert.are.equal(0, status)
    assert.is_true(helper.exists(dir .. "/t.lock"))
    assert.are.equal(testhelper.getpid(), portalock.read_pid(dir .. "/p.pid"))
    assert.is_true(temporary:locked())
    assert.is_true(pidfile:locked())
    temporary:release()
    pidfile:release()
    assert.is_false(helper.exists(dir .. "/t.lock"))
    assert.is_false(helper.exists(dir .. "/p.pid"))
  end)

  it("leaves a bounded semaphore's slot with the parent", function()
    local sem = portalock.NamedBoundedSemaphore(1, {name = "fork", directory = dir})
    local slot = assert(sem:acquire())
    local status = in_child(function()
      local ok = not sem:locked() and not slot:locked() and sem:release() == true
      sem = nil -- luacheck: ignore 311
      collectgarbage()
      return ok
    end)
    assert.are.equal(0, status)
    assert.is_true(slot:locked())
    assert.is_false(flock_free(slot.filename))
    assert.is_true(sem:release())
    assert.is_true(flock_free(slot.filename))
  end)

  it("gives a counting semaphore's child none of the parent's acquires to release", function()
    local name = "portalock-fork-" .. testhelper.getpid()
    local sem = portalock.Semaphore(2, {name = name})
    assert.is_true(sem:acquire())
    local status = in_child(function()
      local closed = pcall(getmetatable(sem).__close, sem)
      return closed and sem:held() == 0 and sem:get_value() == 1
    end)
    assert.are.equal(0, status)
    assert.are.equal(1, sem:get_value())
    assert.are.equal(1, sem:held())
    assert.is_true(sem:release())
    assert.is_true(sem:unlink())
  end)

  it("keeps a Lockable object's lock with the parent", function()
    local obj = portalock.Lockable.init({}, {filename = path})
    assert.is_true(obj:acquire())
    local status = in_child(function()
      -- as for RLock, the child's copy holds nothing: its release is a no-op
      return obj:release() == true and not flock_free(path)
    end)
    assert.are.equal(0, status)
    assert.is_false(flock_free(path))
    assert.is_true(obj:release())
    assert.is_true(flock_free(path))
  end)

  it("reports an RLock as not held in the child and lets its release be a no-op", function()
    local rlock = portalock.RLock(path)
    assert(rlock:acquire())
    local status = in_child(function()
      return rlock:release() == true and not rlock:locked()
    end)
    assert.are.equal(0, status)
    assert.is_true(rlock:locked())
    rlock:release()
  end)
end)
