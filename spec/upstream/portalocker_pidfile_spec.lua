-- Ported from portalocker 4.1's portalocker_tests/test_pidfilelock.py. Mapping: `with lock as
-- result` (None when acquired, the holder's PID when not) is `lock:acquire()` (a handle, or nil
-- and err.holder_pid); `fail_closed()` is portalock.with (it raises err on contention and never
-- enters the body); `lock.read_pid()` is portalock.read_pid(lock.filename); `_acquired_lock` is
-- lock:locked(). Failures the Python tests provoke by monkeypatching open/os.fsync/os.unlink are
-- real system-call failures here, injected into a child process by strace(1).
-- The PID is published by one write(2) to a fresh temporary, fsync(2) and rename(2): the
-- publication stages are those three (Python's seek/truncate/flush/close stages of a file object
-- have no counterpart; its "open" stage is not injected, as the temporary's open cannot be told
-- apart from the interpreter's own opens by count).
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local upstream = require "spec.support.upstream"

describe("portalocker's tests: test_pidfilelock", function()
  local dir, path, children

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/upstream.pid"
    children = {}
  end)

  after_each(function()
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  local function needs_strace()
    assert.is_true(upstream.have_strace(), "strace(1) cannot trace here (no ptrace?)")
  end

  -- Runs `code` (arguments: path) in a child under strace with `inject`; returns its output.
  local function run_injected(code, trace, inject)
    local out, code_ = helper.capture(upstream.strace(helper.lua_command(code, path), trace, nil, inject))
    assert.are.equal(0, code_, out)
    return out
  end

  it("test_already_locked_holder_pid_exists_without_init: AlreadyLocked of a plain Lock has no holder_pid", function()
    children[1] = helper.hold("Lock", path, dir)
    local none, err = portalock.Lock(path):acquire({timeout = 0})
    assert.is_nil(none)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_nil(err.holder_pid)
  end)

  it("test_pidfilelock_creation", function()
    local lock = portalock.PidFileLock(path)
    assert.are.equal(path, lock.filename)
    assert.is_false(lock:locked())
  end)

  it("test_pidfilelock_acquire_writes_pid", function()
    local lock = portalock.PidFileLock(path)
    assert(lock:acquire())
    assert.is_true(lock:locked())
    assert.are.equal(tostring(core.getpid()), helper.read(path):match("^%s*(.-)%s*$"))
    assert.is_true(lock:release())
  end)

  it("test_pidfilelock_context_manager_success", function()
    local lock = portalock.PidFileLock(path)
    portalock.with(lock, function(handle)
      assert.are.equal("file", io.type(handle))
      assert.is_true(lock:locked())
      assert.are.equal(core.getpid(), portalock.read_pid(path))
    end)
    assert.is_false(lock:locked())
    assert.is_false(helper.exists(path))
  end)

  -- Fails until item 11 of issue 14 lands: the sidecar stays behind today.
  it("test_pidfilelock_fail_closed_context_manager_success: neither file stays behind", function()
    local lock = portalock.PidFileLock(path)
    portalock.with(lock, function()
      assert.is_true(lock:locked())
      assert.are.equal(core.getpid(), portalock.read_pid(path))
    end)
    assert.is_false(lock:locked())
    assert.is_false(helper.exists(path))
    assert.is_false(helper.exists(path .. ".lock"))
  end)

  it("test_pidfilelock_fail_closed_missing_holder_pid", function()
    local holder = portalock.PidFileLock(path)
    assert(holder:acquire())
    assert(os.remove(path))
    local entered = false
    local ok, err = pcall(portalock.with, portalock.PidFileLock(path), function() entered = true end)
    assert.is_false(ok)
    assert.is_false(entered)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_nil(err.holder_pid)
    assert.is_true(holder:release())
  end)

  it("test_pidfilelock_fail_closed_reports_holder_pid", function()
    local holder = portalock.PidFileLock(path)
    assert(holder:acquire())
    local entered = false
    local ok, err = pcall(portalock.with, portalock.PidFileLock(path), function() entered = true end)
    assert.is_false(ok)
    assert.is_false(entered)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.are.equal(core.getpid(), err.holder_pid)
    assert.is_true(holder:release())
  end)

  it("test_pidfilelock_context_manager_already_locked: a stale PID is overwritten, then reported", function()
    helper.write(path, "99999")
    local lock1 = portalock.PidFileLock(path)
    assert(lock1:acquire())
    local lock2 = portalock.PidFileLock(path)
    local none, err = lock2:acquire()
    assert.is_nil(none)
    assert.are.equal(core.getpid(), err.holder_pid)
    assert.is_false(lock2:locked())
    assert.is_true(lock1:release())
  end)

  describe("read_pid", function()
    it("test_read_pid_nonexistent_file", function()
      assert.is_nil(portalock.read_pid(portalock.PidFileLock(path).filename))
    end)

    it("test_read_pid_empty_file", function()
      helper.write(path, "")
      assert.is_nil(portalock.read_pid(path))
    end)

    it("test_read_pid_invalid_content", function()
      helper.write(path, "not_a_number")
      assert.is_nil(portalock.read_pid(path))
    end)

    it("test_read_pid_valid_content", function()
      helper.write(path, "12345")
      assert.are.equal(12345, portalock.read_pid(path))
    end)

    it("test_read_pid_permission_error: a file that cannot be opened reads as nil", function()
      helper.write(path, "12345")
      local uid = helper.capture("id -u"):match("%d+")
      if uid ~= "0" then
        os.execute("chmod 000 " .. helper.quote(path))
        assert.is_nil(io.open(path))
        assert.is_nil(portalock.read_pid(path))
        return
      end
      -- As root, read it as the unprivileged user nobody: the directory lets it in, the
      -- file (0600, root's) does not.
      os.execute("chmod 755 " .. helper.quote(dir) .. " && chmod 600 " .. helper.quote(path))
      local out, code = helper.capture("setpriv --reuid=nobody --regid=nogroup --clear-groups "
        .. helper.lua_command([[
          local portalock = require "portalock"
          print(io.open(...) == nil, portalock.read_pid(...))
        ]], path))
      assert.are.equal(0, code, out)
      assert.are.equal("true\tnil\n", out)
    end)
  end)

  it("test_release_without_acquire", function()
    local lock = portalock.PidFileLock(path)
    assert.is_true(lock:release())
    assert.is_false(lock:locked())
  end)

  it("test_multiple_context_manager_entries", function()
    local lock = portalock.PidFileLock(path)
    portalock.with(lock, function()
      local none, err = portalock.PidFileLock(path):acquire()
      assert.is_nil(none)
      assert.are.equal(core.getpid(), err.holder_pid)
    end)
  end)

  -- Fails until item 12 of issue 14 lands: the fields are not readable today.
  it("test_custom_parameters: the settings are readable fields", function()
    local lock = portalock.PidFileLock(path, {timeout = 10.0, check_interval = 0.1, fail_when_locked = false})
    assert.are.equal(path, lock.filename)
    assert.are.equal(10.0, lock.timeout)
    assert.are.equal(0.1, lock.check_interval)
    assert.are.equal(false, lock.fail_when_locked)
  end)

  it("test_multiprocess_locking: a second process learns the first one's PID", function()
    local holder = helper.hold("PidFileLock", path, dir)
    children[1] = holder
    local out, code = helper.capture(helper.lua_command([[
      local portalock = require "portalock"
      local none, err = portalock.PidFileLock(...):acquire()
      print(none, err.kind, err.holder_pid)
    ]], path))
    assert.are.equal(0, code, out)
    assert.are.equal("nil\tAlreadyLocked\t" .. holder .. "\n", out)
  end)

  it("test_pidfilelock_timeout_waits_when_not_fail_when_locked", function()
    children[1] = helper.hold("PidFileLock", path, dir)
    local contender = portalock.PidFileLock(path)
    local started = core.monotonic()
    local none, err = contender:acquire({fail_when_locked = false, timeout = 0.5})
    local waited = core.monotonic() - started
    assert.is_nil(none)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(waited >= 0.3, "expected a ~0.5 s wait, waited " .. waited)
    -- fail_when_locked does not wait out the timeout (5 s: a loaded machine's delays stay
    -- far below it)
    started = core.monotonic()
    none, err = contender:acquire({fail_when_locked = true, timeout = 5})
    local fast = core.monotonic() - started
    assert.is_nil(none)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(fast < 2.5, "expected a fast failure, took " .. fast)
  end)

  -- Difference: portalocker 4.1 turns every LockException of the sidecar into AlreadyLocked;
  -- portalock keeps a failure that is not contention a LockException (as portalocker 4.2 does).
  it("test_pidfilelock_normalizes_plain_lockexception: a failure that is not contention stays "
    .. "LockException", function()
    needs_strace()
    local out = run_injected([[
      local lock = require("portalock").PidFileLock(...)
      local none, err = lock:acquire()
      print(none, err.kind, err.errno == require("portalock.core").ERRNO.ENOLCK, lock:locked())
    ]], "flock", "flock:error=ENOLCK")
    assert.are.equal("nil\tLockException\ttrue\tfalse\n", out)
  end)

  -- Fails until item 11 of issue 14 lands: the sidecar is not removed today.
  it("test_pidfilelock_unlinks_sidecar_before_unlock", function()
    needs_strace()
    local sidecar = path .. ".lock"
    local events = upstream.release_events("PidFileLock", path, sidecar)
    local position = {}
    for i, event in ipairs(events) do
      position[event] = i
    end
    assert.is_truthy(position.unlock or position.close, "sidecar lock never released: " .. table.concat(events, ", "))
    assert.is_truthy(position["unlink " .. sidecar], "sidecar never unlinked: " .. table.concat(events, ", "))
    local released = position.unlock or position.close
    assert.is_true(position["unlink " .. sidecar] < released, table.concat(events, ", "))
    -- And the PID file goes first too (the contract: removed before the sidecar is unlocked).
    assert.is_true((position["unlink " .. path] or math.huge) < released, table.concat(events, ", "))
  end)

  it("test_pidfilelock_unlocks_even_when_unlink_fails", function()
    needs_strace()
    local out = run_injected([[
      local portalock, core = require "portalock", require "portalock.core"
      local lock = portalock.PidFileLock(...)
      assert(lock:acquire())
      local ok, err = lock:release()
      print(ok, err.kind, lock:locked())
      local fresh = portalock.PidFileLock(...)
      assert(fresh:acquire({timeout = 0}))
      print(portalock.read_pid(...) == core.getpid(), fresh:release())
    ]], "unlink,unlinkat", "unlink,unlinkat:error=EACCES:when=1")
    assert.are.equal("nil\tLockException\tfalse\ntrue\ttrue\n", out)
  end)

  it("test_pidfilelock_release_without_acquire", function()
    assert.is_true(portalock.PidFileLock(path):release())
    assert.is_false(helper.exists(path))
    assert.is_false(helper.exists(path .. ".lock"))
  end)

  local STAGES = {
    write = {"write", "write:error=EIO:when=1"},
    fsync = {"fsync", "fsync:error=EIO:when=1"},
    rename = {"rename,renameat,renameat2", "rename,renameat,renameat2:error=EIO:when=1"},
  }
  for _, stage in ipairs({"write", "fsync", "rename"}) do
    it("test_pidfilelock_releases_sidecar_on_publication_failure[" .. stage .. "]", function()
      needs_strace()
      local out = run_injected([[
        local portalock, core = require "portalock", require "portalock.core"
        local path = ...
        local failing = portalock.PidFileLock(path)
        local none, err = failing:acquire()
        local temporary = io.open(path .. "." .. core.getpid() .. ".tmp")
        io.stdout:write(tostring(none), " ", err.kind, " ", tostring(failing:locked()), " ",
          tostring(temporary == nil), "\n")
        local recovered = portalock.PidFileLock(path)
        assert(recovered:acquire({timeout = 0}))
        io.stdout:write(tostring(portalock.read_pid(path) == core.getpid()), " ", tostring(recovered:release()), "\n")
      ]], STAGES[stage][1], STAGES[stage][2])
      assert.are.equal("nil LockException false true\ntrue true\n", out)
      assert.is_false(helper.exists(path))
    end)
  end

  for _, errno in ipairs({"EINVAL", "EOPNOTSUPP"}) do
    it("test_pidfilelock_tolerates_unsupported_fsync[" .. errno .. "]", function()
      needs_strace()
      local out = run_injected([[
        local portalock, core = require "portalock", require "portalock.core"
        local lock = portalock.PidFileLock(...)
        assert(lock:acquire({timeout = 0}))
        print(lock:locked(), portalock.read_pid(...) == core.getpid(), lock:release())
      ]], "fsync", "fsync:error=" .. errno)
      assert.are.equal("true\ttrue\ttrue\n", out)
    end)
  end

  it("test_pidfilelock_release_without_ownership_keeps_files", function()
    local stale = portalock.PidFileLock(path)
    assert(stale:acquire())
    assert.is_true(stale:release())
    local holder = portalock.PidFileLock(path)
    assert(holder:acquire())
    assert.is_true(stale:release())
    assert.is_true(helper.exists(path), "stale release unlinked the pid file")
    assert.is_true(portalock.PidFileLock(path):release())
    assert.is_true(helper.exists(path), "never-acquired release unlinked the pid file")
    assert.are.equal(core.getpid(), portalock.read_pid(path))
    assert.is_true(holder:release())
    assert.is_false(helper.exists(path))
  end)
end)
