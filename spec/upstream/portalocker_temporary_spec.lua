-- Ported from portalocker 4.1's portalocker_tests/: test_temporary_file_lock.py and
-- test_multiprocess.py. Where the Python tests monkeypatch os.unlink or portalocker.unlock,
-- these trace or fail the real system call in a child process with strace(1).
-- Not ported (they test a private helper through monkeypatching, with no outside equivalent):
-- test_fh_matches_path_detects_swap, test_temporaryfilelock_gives_up_on_persistent_swap.
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local upstream = require "spec.support.upstream"

local LOCK_SH, LOCK_EX, LOCK_NB = portalock.LOCK_SH, portalock.LOCK_EX, portalock.LOCK_NB

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

  -- Starts a child that runs `code` (with the given arguments) in the background; returns its PID.
  local function start(code, ...)
    local pid = helper.spawn(helper.lua_command(code, ...), dir .. "/child." .. #children .. ".log")
    children[#children + 1] = pid
    return pid
  end

  local function wait_for(file)
    assert.is_true(helper.wait_until(function() return helper.exists(file) end, 15),
      "never appeared: " .. file)
  end

  describe("test_temporary_file_lock", function()
    -- Difference: portalocker 4.1 removes the file when the lock object is collected; portalock
    -- has no releasing finalizer (neither has portalocker 4.2): collection only closes the
    -- descriptor, which frees the kernel lock, and the file stays.
    it("test_temporary_file_lock: with() removes the file; collection does not", function()
      portalock.with(portalock.TemporaryFileLock(path), function() end)
      assert.is_false(helper.exists(path))
      do
        local lock = portalock.TemporaryFileLock(path)
        assert(lock:acquire())
      end
      collectgarbage()
      collectgarbage()
      assert.is_true(helper.exists(path))
      local fresh = portalock.TemporaryFileLock(path, {timeout = 0})
      assert(fresh:acquire())
      assert.is_true(fresh:release())
      assert.is_false(helper.exists(path))
    end)

    it("test_temporaryfilelock_unlinks_before_unlock", function()
      assert.is_true(upstream.have_strace(), "strace(1) cannot trace here (no ptrace?)")
      assert.are.same({"unlink " .. path, "unlock"}, upstream.release_events("TemporaryFileLock", path, path))
    end)

    it("test_temporaryfilelock_unlocks_even_when_unlink_fails", function()
      assert.is_true(upstream.have_strace(), "strace(1) cannot trace here (no ptrace?)")
      -- The first unlink fails with EACCES; release reports it and unlocks regardless.
      local out, code = helper.capture(upstream.strace(helper.lua_command([[
        local portalock = require "portalock"
        local lock = portalock.TemporaryFileLock(...)
        assert(lock:acquire())
        local ok, err = lock:release()
        print(ok, err.kind, err.path, lock:locked())
        local fresh = portalock.TemporaryFileLock(..., {timeout = 0})
        print(fresh:acquire() ~= nil, fresh:release())
      ]], path), "unlink,unlinkat", nil, "unlink,unlinkat:error=EACCES:when=1"))
      assert.are.equal(0, code, out)
      assert.are.equal("nil\tLockException\t" .. path .. "\tfalse\ntrue\ttrue\n", out)
      assert.is_false(helper.exists(path))
    end)

    it("test_temporaryfilelock_recovers_from_stale_handle: a waiter ends up on the file at the path", function()
      local holder = helper.hold("TemporaryFileLock", path, dir)
      children[#children + 1] = holder
      local ready, release = dir .. "/waiter.ready", dir .. "/waiter.release"
      local waiter = start([[
        local portalock, core = require "portalock", require "portalock.core"
        local path, ready, release = ...
        local lock = portalock.TemporaryFileLock(path, {timeout = 30, fail_when_locked = false})
        assert(lock:acquire())
        io.open(ready, "w"):close()
        while not io.open(release) do local t = core.monotonic() + 0.01; core.wait(nil, t, t) end
        assert(lock:release())
      ]], path, ready, release)
      assert.is_true(helper.wait_until(function() return #upstream.descriptors_of(waiter, path) > 0 end, 15))
      -- Replace the file behind both, then let the holder die without cleaning up.
      helper.write(path .. ".new", "")
      assert(os.rename(path .. ".new", path))
      helper.kill(holder)
      wait_for(ready)
      assert.are.same({upstream.inode(path)}, upstream.open_inodes(waiter, path))
      local none, err = portalock.TemporaryFileLock(path, {timeout = 0}):acquire()
      assert.is_nil(none)
      assert.are.equal("AlreadyLocked", err.kind)
      helper.write(release, "")
      assert.is_true(helper.wait_until(function() return not helper.exists(path) end, 15))
    end)

    it("test_temporaryfilelock_sequential_cycles", function()
      for _ = 1, 2 do
        local lock = portalock.TemporaryFileLock(path)
        assert(lock:acquire())
        assert.is_true(helper.exists(path))
        assert.is_true(lock:release())
        assert.is_false(helper.exists(path))
      end
    end)

    it("test_temporaryfilelock_release_without_ownership_keeps_file", function()
      local stale = portalock.TemporaryFileLock(path)
      assert(stale:acquire())
      assert.is_true(stale:release())
      local holder = portalock.TemporaryFileLock(path)
      assert(holder:acquire())
      assert.is_true(stale:release())
      assert.is_true(helper.exists(path), "stale release unlinked a held path")
      assert.is_true(portalock.TemporaryFileLock(path):release())
      assert.is_true(helper.exists(path), "never-acquired release unlinked a held path")
      assert.is_true(holder:release())
      assert.is_false(helper.exists(path))
    end)
  end)

  describe("test_multiprocess", function()
    for _, fail_when_locked in ipairs({true, false}) do
      local suffix = "[" .. tostring(fail_when_locked) .. "]"

      it("test_shared_processes" .. suffix .. ": two processes hold a shared lock at once", function()
        local code = [[
          local portalock, core = require "portalock", require "portalock.core"
          local path, mine, other, fwl = ...
          local lock = portalock.Lock(path, {timeout = 0.1, fail_when_locked = fwl == "true",
            flags = portalock.LOCK_SH + portalock.LOCK_NB})
          local fh, err = lock:acquire()
          if not fh then io.stderr:write(tostring(err), "\n") os.exit(1) end
          io.open(mine, "w"):close()
          local deadline = core.monotonic() + 15
          while not io.open(other) do
            if core.monotonic() > deadline then os.exit(2) end
            local t = core.monotonic() + 0.01
            core.wait(nil, t, t)
          end
          assert(lock:release())
          io.open(mine .. ".done", "w"):close()
        ]]
        local a, b = dir .. "/a", dir .. "/b"
        helper.run("(" .. helper.lua_command(code, path, a, b, tostring(fail_when_locked)) .. ") & ("
          .. helper.lua_command(code, path, b, a, tostring(fail_when_locked)) .. ") & wait")
        assert.is_true(helper.exists(a .. ".done"))
        assert.is_true(helper.exists(b .. ".done"))
      end)

      it("test_exclusive_processes" .. suffix .. ": a held exclusive lock keeps another process out", function()
        local holder = helper.hold("Lock", path, dir)
        children[#children + 1] = holder
        local entered = false
        local started = core.monotonic()
        -- fail_when_locked: does not wait out a 5 s timeout (a loaded machine's delays stay far
        -- below it); otherwise waits out 0.5 s
        local ok, err = pcall(portalock.with, portalock.Lock(path, {timeout = fail_when_locked and 5 or 0.5,
          fail_when_locked = fail_when_locked, flags = LOCK_EX + LOCK_NB}), function() entered = true end)
        local elapsed = core.monotonic() - started
        assert.is_false(ok)
        assert.is_false(entered)
        assert.are.equal("AlreadyLocked", err.kind)
        if fail_when_locked then
          assert.is_true(elapsed < 2.5, "waited " .. elapsed)
        else
          assert.is_true(elapsed >= 0.45, "waited " .. elapsed)
        end
        helper.write(dir .. "/release", "")
        assert.is_true(helper.wait_until(function() return not helper.alive(holder) end, 15))
        assert(portalock.Lock(path, {flags = LOCK_SH + LOCK_NB}):acquire({timeout = 0}))
      end)
    end

    for _, case in ipairs({{"temporary", "TemporaryFileLock", ""}, {"pid", "PidFileLock", ".lock"}}) do
      local kind, class, sidecar = case[1], case[2], case[3]
      it("test_temporary_lock_waiters_converge_on_current_inode[" .. kind .. "]", function()
        local filename = dir .. "/" .. kind .. ".lock"
        local native = filename .. sidecar
        local holder = portalock[class](filename, {timeout = 30, fail_when_locked = false})
        assert(holder:acquire())
        local acquired, release = dir .. "/acquired", dir .. "/release"
        local waiter = start([[
          local portalock, core = require "portalock", require "portalock.core"
          local class, filename, acquired, release = ...
          local lock = portalock[class](filename, {timeout = 30, fail_when_locked = false})
          assert(lock:acquire())
          io.open(acquired, "w"):close()
          while not io.open(release) do local t = core.monotonic() + 0.01; core.wait(nil, t, t) end
          assert(lock:release())
        ]], class, filename, acquired, release)
        -- The waiter has opened the holder's inode and waits on it.
        assert.is_true(helper.wait_until(function() return #upstream.descriptors_of(waiter, native) > 0 end, 15),
          "the waiter never opened " .. native)
        assert.is_true(holder:release())
        wait_for(acquired)
        local contender = portalock[class](filename, {timeout = 0, fail_when_locked = true})
        local none, err = contender:acquire()
        assert.is_nil(none)
        assert.are.equal("AlreadyLocked", err.kind)
        assert.is_true(contender:release())
        assert.are.same({upstream.inode(native)}, upstream.open_inodes(waiter, native))
        helper.write(release, "")
        assert.is_true(helper.wait_until(function() return not helper.alive(waiter) end, 15))
        assert.is_false(helper.exists(filename))
      end)
    end
  end)
end)
