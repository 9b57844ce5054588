-- portalocker's own test cases with Python on the other side: Debian's python3-portalocker
-- (2.2.1) holds or awaits the lock while portalock takes the other part. spec/interop_spec.lua
-- already covers a plain exclusive lock held by either side through the low-level lock(), and
-- spec/bounded_spec.lua the shared semaphore slots; these add the upstream cases on top.
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

local LOCK_SH, LOCK_NB = portalock.LOCK_SH, portalock.LOCK_NB

-- Holds a lock (kind: exclusive, shared or temporary) until RELEASE exists or SECONDS pass.
local PYTHON_HOLD = [[
import os, sys, time, portalocker
from portalocker import utils
path, ready, release, kind, seconds = sys.argv[1:6]
if kind == "temporary":
    lock = utils.TemporaryFileLock(path, timeout=5)
elif kind == "shared":
    lock = portalocker.Lock(path, timeout=5, flags=portalocker.LOCK_SH | portalocker.LOCK_NB)
else:
    lock = portalocker.Lock(path, timeout=5)
lock.acquire()
open(ready, "w").close()
deadline = time.monotonic() + float(seconds)
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.01)
lock.release()
]]

-- Tries a lock (kind: exclusive, shared, truncate = mode "w", temporary); exit 0 when acquired
-- (then released), 1 on contention. 2.2.1's AlreadyLocked is not a LockException: catch both.
local PYTHON_TRY = [[
import sys, portalocker
from portalocker import exceptions, utils
path, kind, timeout, fwl = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "true"
if kind == "temporary":
    lock = utils.TemporaryFileLock(path, timeout=timeout, fail_when_locked=fwl)
elif kind == "truncate":
    lock = portalocker.Lock(path, mode="w", timeout=timeout, fail_when_locked=fwl)
else:
    flags = portalocker.LOCK_SH if kind == "shared" else portalocker.LOCK_EX
    lock = portalocker.Lock(path, timeout=timeout, fail_when_locked=fwl, flags=flags | portalocker.LOCK_NB)
try:
    lock.acquire()
except exceptions.BaseLockException:
    sys.exit(1)
lock.release()
]]

describe("portalocker's tests against Python's portalocker", function()
  local dir, path, peers

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/interop.lock"
    peers = {}
  end)

  after_each(function()
    for _, pid in ipairs(peers) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  local function python(code, ...)
    local parts = {helper.peer_env .. helper.python, "-c", helper.quote(code)}
    for i = 1, select("#", ...) do
      parts[#parts + 1] = helper.quote(tostring((select(i, ...))))
    end
    return table.concat(parts, " ")
  end

  -- Python holds the lock of `kind` for at most `seconds`; returns once it does.
  local function python_holds(kind, seconds)
    local ready = dir .. "/python.ready"
    peers[#peers + 1] = helper.spawn(python(PYTHON_HOLD, path, ready, dir .. "/python.release", kind,
      seconds or 30), dir .. "/python.log")
    assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 15),
      "Python never took the lock: " .. tostring(helper.read(dir .. "/python.log")))
  end

  local function python_tries(kind, timeout, fail_when_locked)
    return helper.run(python(PYTHON_TRY, path, kind, timeout or 0.1, fail_when_locked and "true" or "false"))
  end

  it("test_shared_processes: a shared lock coexists with Python's, both ways", function()
    python_holds("shared")
    local lock = portalock.Lock(path, {flags = LOCK_SH + LOCK_NB, timeout = 0.1})
    assert(lock:acquire())
    assert.are.equal(0, python_tries("shared"))
    assert.are.equal(1, python_tries("exclusive"))
    assert.is_true(lock:release())
  end)

  for _, fail_when_locked in ipairs({true, false}) do
    it("test_exclusive_processes[" .. tostring(fail_when_locked) .. "]: Python's Lock is kept out "
      .. "for its timeout", function()
      local lock = portalock.Lock(path)
      assert(lock:acquire())
      local started = core.monotonic()
      assert.are.equal(1, python_tries("exclusive", 0.5, fail_when_locked))
      if not fail_when_locked then
        assert.is_true(core.monotonic() - started >= 0.45)
      end
      assert.is_true(lock:release())
      assert.are.equal(0, python_tries("exclusive", 0.5, fail_when_locked))
    end)
  end

  it("test_exclusive_processes, Python awaiting: Python acquires once portalock releases", function()
    local lock = portalock.Lock(path)
    assert(lock:acquire())
    local status = dir .. "/python.status"
    peers[#peers + 1] = helper.spawn("sh -c " .. helper.quote(python(PYTHON_TRY, path, "exclusive", 10, "false")
      .. "; echo $? > " .. helper.quote(status)))
    helper.sleep(0.5)
    assert.is_false(helper.exists(status), "Python got the lock portalock holds")
    assert.is_true(lock:release())
    assert.is_true(helper.wait_until(function() return helper.read(status) == "0\n" end, 15),
      "Python never acquired: " .. tostring(helper.read(status)))
  end)

  it("test_exclusive_processes, portalock awaiting: the Lock acquires once Python releases", function()
    python_holds("exclusive", 0.5)
    local started = core.monotonic()
    local fh = assert(portalock.Lock(path, {timeout = 10}):acquire())
    assert.is_true(core.monotonic() - started >= 0.3)
    assert.are.equal("file", io.type(fh))
  end)

  it('test_with_timeout: Python\'s "w" Lock neither gets nor truncates what portalock holds', function()
    local lock = portalock.Lock(path)
    local fh = assert(lock:acquire())
    fh:write("writing some stuff to my cache...\n")
    fh:flush()
    assert.are.equal(1, python_tries("truncate", 0.1, true))
    assert.are.equal("writing some stuff to my cache...\n", helper.read(path))
    assert.is_true(lock:release())
  end)

  describe("test_temporary_file_lock", function()
    it("Python's TemporaryFileLock keeps portalock's out", function()
      python_holds("temporary")
      local none, err = portalock.TemporaryFileLock(path):acquire()
      assert.is_nil(none)
      assert.are.equal("AlreadyLocked", err.kind)
    end)

    it("portalock's keeps Python's out, and once released the file is gone and Python's acquires", function()
      local lock = portalock.TemporaryFileLock(path)
      assert(lock:acquire())
      assert.are.equal(1, python_tries("temporary", 0.1, true))
      assert.is_true(lock:release())
      assert.is_false(helper.exists(path))
      assert.are.equal(0, python_tries("temporary", 0.1, true))
    end)
  end)
end)
