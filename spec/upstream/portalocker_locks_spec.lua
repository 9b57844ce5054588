-- Ported from portalocker 4.1's portalocker_tests/: test_core_locking.py, test_lock_flags.py,
-- test_mechanisms.py, test_timeout_behaviour.py, test_rlock_behaviour.py and the applicable
-- half of test_posix_locker_dispatch.py. Each `it` names the upstream test it re-expresses.
-- Python's exceptions are `nil, err` here (err.kind, err:is(portalock.LockException)), its
-- `with` is portalock.with, its LOCKERS (fcntl.flock, fcntl.lockf) are the backends "flock" and
-- "posix". Deliberate differences are asserted as such and listed in the README under
-- "Differences from portalocker".
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local upstream = require "spec.support.upstream"

local LOCK_SH, LOCK_EX, LOCK_NB = portalock.LOCK_SH, portalock.LOCK_EX, portalock.LOCK_NB
local TEXT = "spam and eggs"
-- portalocker's LOCKERS on POSIX, as portalock backends.
local LOCKERS = {flock = "flock", lockf = "posix"}

local function is_lock_exception(err)
  assert.is_table(err)
  assert.is_true(err:is(portalock.LockException), tostring(err))
end

describe("portalocker's tests:", function()
  local dir, path, children

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/upstream.lock"
    children = {}
  end)

  after_each(function()
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  local function hold(opts)
    local pid = helper.hold("Lock", path, dir, opts)
    children[#children + 1] = pid
    return pid
  end

  describe("test_core_locking", function()
    it("test_exceptions: a second handle cannot lock a file another handle holds", function()
      local a, b = assert(io.open(path, "a")), assert(io.open(path, "a"))
      assert.are.equal(a, portalock.lock(a, LOCK_EX + LOCK_NB))
      local ok, err = portalock.lock(b, LOCK_EX + LOCK_NB)
      assert.is_nil(ok)
      is_lock_exception(err)
      assert.are.equal("AlreadyLocked", err.kind)
      a:close()
      b:close()
    end)

    it("test_simple: writing through a locked r+ handle keeps the text before it", function()
      helper.write(path, TEXT)
      local fh = assert(io.open(path, "r+"))
      assert(portalock.lock(fh, LOCK_EX))
      fh:seek("set", 13)
      fh:write("foo")
      fh:seek("set", 0)
      assert.are.equal(TEXT, fh:read(13))
      assert.is_true(portalock.unlock(fh))
      fh:close()
      assert.are.equal(TEXT .. "foo", helper.read(path))
    end)

    it('test_truncate: "a+" keeps the content, "w+" truncates once locked', function()
      helper.write(path, TEXT)
      portalock.with(portalock.Lock(path, {mode = "a+"}), function(fh)
        fh:seek("set", 0)
        assert.are.equal(TEXT, fh:read(13))
      end)
      portalock.with(portalock.Lock(path, {mode = "w+"}), function(fh)
        assert.are.equal("", fh:read("*a"))
      end)
    end)

    it("test_class: re-acquire inside with() is a no-op; a second lock cannot enter", function()
      local lock = portalock.Lock(path)
      local lock2 = portalock.Lock(path, {fail_when_locked = false, timeout = 0.01})
      portalock.with(lock, function(fh)
        assert.are.equal(fh, lock:acquire())
        local entered = false
        local ok, err = pcall(portalock.with, lock2, function() entered = true end)
        assert.is_false(ok)
        is_lock_exception(err)
        assert.is_false(entered)
      end)
      assert.is_true(portalock.with(lock2, function() return true end))
    end)

    it("test_acquire_release: another party cannot acquire; a second release does nothing", function()
      local lock = portalock.Lock(path)
      local lock2 = portalock.Lock(path, {fail_when_locked = false})
      local fh = assert(lock:acquire())
      local none, err = lock2:acquire({timeout = 0.01})
      assert.is_nil(none)
      is_lock_exception(err)
      assert.are.equal(fh, lock:acquire())
      assert.is_true(lock:release())
      assert.is_true(lock:release())
      assert.is_false(lock:locked())
    end)

    -- Difference: releasing an RLock more often than acquired is misuse, which raises a
    -- Lua error (portalocker raises LockException).
    it("test_release_unacquired: releasing an RLock never acquired raises", function()
      local ok, message = pcall(function() return portalock.RLock(path):release() end)
      assert.is_false(ok)
      assert.matches("cannot release RLock '" .. path .. "': it is not held", message, 1, true)
    end)

    it("test_exception: a lock call failing otherwise than by contention ends at once, "
      .. "even with an infinite timeout", function()
      assert.is_true(upstream.have_strace(), "strace(1) cannot trace here (no ptrace?)")
      -- Every flock(2) fails with ENOLCK, as on a mount without lock support.
      local out, code = helper.capture(upstream.strace(helper.lua_command([[
        local portalock, core = require "portalock", require "portalock.core"
        local started = core.monotonic()
        local fh, err = portalock.Lock(..., {mode = "w", timeout = math.huge}):acquire()
        print(fh == nil, err.kind, err.errno == core.ERRNO.ENOLCK, core.monotonic() - started < 5)
      ]], path), "flock", nil, "flock:error=ENOLCK"))
      assert.are.equal(0, code, out)
      assert.are.equal("true\tLockException\ttrue\ttrue\n", out)
    end)
  end)

  describe("test_lock_flags", function()
    it("test_exclusive: an exclusive lock keeps r+ and w+ handles from locking", function()
      helper.write(path, TEXT)
      local fh = assert(io.open(path, "r"))
      assert(portalock.lock(fh, LOCK_EX + LOCK_NB))
      for _, mode in ipairs({"r+", "w+"}) do
        local fh2 = assert(io.open(path, mode))
        local ok, err = portalock.lock(fh2, LOCK_EX + LOCK_NB)
        assert.is_nil(ok, mode)
        is_lock_exception(err)
        fh2:close()
      end
      assert.is_true(portalock.unlock(fh))
      fh:close()
    end)

    it("test_shared: a shared lock lets others read-lock and read, not write-lock", function()
      helper.write(path, TEXT)
      local f = assert(io.open(path, "r"))
      assert(portalock.lock(f, LOCK_SH + LOCK_NB))
      local reader = assert(io.open(path, "r"))
      assert(portalock.lock(reader, LOCK_SH + LOCK_NB))
      assert.are.equal(TEXT, reader:read("*a"))
      reader:close()
      local writer = assert(io.open(path, "w+"))
      local ok, err = portalock.lock(writer, LOCK_EX + LOCK_NB)
      assert.is_nil(ok)
      is_lock_exception(err)
      writer:close()
      assert.is_true(portalock.unlock(f))
      f:close()
    end)

    for locker, backend in pairs(LOCKERS) do
      -- Difference: portalocker only warns that a timeout has no effect with blocking flags;
      -- a portalock Lock waits in its own loop either way and honours the timeout.
      it("test_blocking_timeout[" .. locker .. "]: blocking flags still honour the timeout", function()
        hold({backend = backend})
        for _, how in ipairs({"constructor", "acquire"}) do
          local lock = portalock.Lock(path, {mode = "a+", flags = LOCK_SH, backend = backend,
            timeout = how == "constructor" and 0.3 or nil})
          local started = core.monotonic()
          local fh, err = lock:acquire(how == "acquire" and {timeout = 0.3} or nil)
          local elapsed = core.monotonic() - started
          assert.is_nil(fh)
          assert.are.equal("AlreadyLocked", err.kind)
          assert.is_true(elapsed >= 0.25 and elapsed < 3, how .. ": waited " .. elapsed)
        end
      end)

      it("test_nonblocking[" .. locker .. "]: LOCK_NB alone is refused", function()
        local fh = assert(io.open(path, "w"))
        local ok, message = pcall(portalock.lock, fh, LOCK_NB, backend)
        fh:close()
        assert.is_false(ok)
        assert.matches("bad argument 'flags' to 'lock' (4)", message, 1, true)
      end)
    end
  end)

  describe("test_mechanisms", function()
    -- The descriptor `fh` holds, found from outside Lua (io has no fileno).
    local function fileno(fh, before)
      for fd in pairs(upstream.my_descriptors(path)) do
        if not before[fd] then
          return fd
        end
      end
      error("no new descriptor on " .. path .. " for " .. tostring(fh))
    end

    for _, backend in ipairs({"flock", "ofd", "posix"}) do
      it("test_lock_fileno[" .. backend .. "]: a descriptor number can be locked shared", function()
        local a = assert(io.open(path, "a+"))
        assert(portalock.lock(a, LOCK_SH + LOCK_NB, backend))
        local before = upstream.my_descriptors(path)
        local b = assert(io.open(path, "a+"))
        local fd = fileno(b, before)
        local ok, err = portalock.lock(fd, LOCK_SH + LOCK_NB, backend)
        if backend == "posix" then
          -- Difference: portalocker's lockf takes it (posix locks are per process); portalock
          -- refuses it, since closing either descriptor would drop both.
          assert.is_nil(ok)
          assert.are.equal("LockException", err.kind)
          assert.are.equal(core.ERRNO.EDEADLK, err.errno)
        else
          assert.are.equal(fd, ok, tostring(err))
        end
        b:close()
        a:close()
      end)
    end

    for locker, backend in pairs(LOCKERS) do
      it("test_locker_mechanism[" .. locker .. "]: a second Lock on the held file fails", function()
        portalock.with(portalock.Lock(path, {mode = "a+", flags = LOCK_EX, backend = backend}), function()
          -- With lockf, portalocker grants this second lock (per-process locks); portalock
          -- refuses it for both backends (see test_lock_fileno).
          local second = portalock.Lock(path, {mode = "r+", flags = LOCK_EX + LOCK_NB, backend = backend})
          local fh, err = second:acquire({timeout = 0.1})
          assert.is_nil(fh)
          is_lock_exception(err)
        end)
      end)
    end
  end)

  describe("test_posix_locker_dispatch", function()
    it("test_dispatch_*: naming the flock backend explicitly excludes a second handle", function()
      local a, b = assert(io.open(path, "a+")), assert(io.open(path, "a+"))
      assert(portalock.lock(a, LOCK_EX, "flock"))
      local ok, err = portalock.lock(b, LOCK_EX + LOCK_NB, "flock")
      assert.is_nil(ok)
      is_lock_exception(err)
      assert.is_true(portalock.unlock(a, "flock"))
      a:close()
      b:close()
    end)

    it("test_posix_lockexception_has_strerror: contention carries the system's message", function()
      local a, b = assert(io.open(path, "a+")), assert(io.open(path, "a+"))
      assert(portalock.lock(a, LOCK_EX))
      local ok, err = portalock.lock(b, LOCK_EX + LOCK_NB)
      assert.is_nil(ok)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.are.equal(core.ERRNO.EAGAIN, err.errno)
      assert.matches("Resource temporarily unavailable", err.message, 1, true)
      portalock.unlock(a)
      a:close()
      b:close()
    end)
  end)

  describe("test_timeout_behaviour", function()
    local FIRST = "writing some stuff to my cache...\n"

    it('test_with_timeout: a "wb" lock that fails when locked is AlreadyLocked', function()
      local ok, err = pcall(portalock.with, portalock.Lock(path, {timeout = 0.1}), function(fh)
        fh:write(FIRST)
        portalock.with(portalock.Lock(path, {timeout = 0.1, mode = "wb", fail_when_locked = true}), function() end)
        fh:write("writing more stuff to my cache...\n")
      end)
      assert.is_false(ok)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.are.equal(FIRST, helper.read(path))
    end)

    -- Difference: within one Lua state the second Lock fails at once (waiting on itself would
    -- deadlock); portalocker waits out the default timeout first.
    it('test_without_timeout: a "w" lock with the default timeout is a LockException', function()
      local ok, err = pcall(portalock.with, portalock.Lock(path, {timeout = nil}), function(fh)
        fh:write(FIRST)
        portalock.with(portalock.Lock(path, {timeout = nil, mode = "w"}), function() end)
      end)
      assert.is_false(ok)
      is_lock_exception(err)
      assert.are.equal(FIRST, helper.read(path))
    end)

    it("test_without_fail: fail_when_locked = false still ends in a LockException", function()
      portalock.with(portalock.Lock(path, {timeout = 0.1}), function(fh)
        fh:write(FIRST)
        local lock = portalock.Lock(path, {timeout = 0.1})
        local none, err = lock:acquire({check_interval = 0.05, fail_when_locked = false})
        assert.is_nil(none)
        is_lock_exception(err)
      end)
    end)

    it("test_without_fail, across processes: the wait lasts the timeout", function()
      hold()
      local lock = portalock.Lock(path, {timeout = 0.3})
      local started = core.monotonic()
      local none, err = lock:acquire({check_interval = 0.05, fail_when_locked = false})
      local elapsed = core.monotonic() - started
      assert.is_nil(none)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(elapsed >= 0.25 and elapsed < 3, "waited " .. elapsed)
    end)
  end)

  describe("test_rlock_behaviour", function()
    it("test_rlock_acquire_release_count: the handle closes at the last release", function()
      local lock = portalock.RLock(path)
      local h = assert(lock:acquire())
      assert.are.equal("file", io.type(h))
      assert.are.equal(h, lock:acquire())
      assert.is_true(lock:release())
      assert.are.equal("file", io.type(h))
      assert.is_true(lock:release())
      assert.are.equal("closed file", io.type(h))
    end)

    it("test_rlock_acquire_release: another RLock cannot acquire while one holds", function()
      local lock = portalock.RLock(path)
      local lock2 = portalock.RLock(path, {fail_when_locked = false})
      assert(lock:acquire())
      local none, err = lock2:acquire({timeout = 0.01})
      assert.is_nil(none)
      is_lock_exception(err)
      assert(lock:acquire())
      assert.is_true(lock:release())
      assert.is_true(lock:release())
      assert.is_false(lock:locked())
    end)
  end)
end)
