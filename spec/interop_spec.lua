local portalock = require "portalock"
local helper = require "spec.support.helper"

-- Peers that are not Lua: flock(1) and Python's portalocker (Debian's, 2.2.1).
describe("interoperation", function()
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

  -- Starts a peer that holds the lock, and waits until it says so.
  local function peer_holds(command)
    local ready = dir .. "/peer.ready"
    local pid = helper.spawn(helper.peer_env .. command(ready))
    peers[#peers + 1] = pid
    assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10))
    return pid
  end

  local function python(code, ...)
    local parts = {helper.peer_env .. helper.python, "-c", helper.quote(code)}
    for i = 1, select("#", ...) do
      parts[#parts + 1] = helper.quote((select(i, ...)))
    end
    return table.concat(parts, " ")
  end

  local PYTHON_HOLD = [[
import portalocker, sys, time
f = open(sys.argv[1], "a")
portalocker.lock(f, portalocker.LOCK_EX | portalocker.LOCK_NB)
open(sys.argv[2], "w").close()
time.sleep(30)
]]

  local PYTHON_TRY = [[
import portalocker, sys
f = open(sys.argv[1], "a")
try:
    portalocker.lock(f, portalocker.LOCK_EX | portalocker.LOCK_NB)
except portalocker.exceptions.BaseLockException:
    sys.exit(1)
sys.exit(0)
]]

  describe("with flock(1)", function()
    it("is excluded by a lock flock(1) holds", function()
      peer_holds(function(ready)
        return "flock -x " .. helper.quote(path) .. " sh -c " .. helper.quote("touch " .. ready .. "; sleep 30")
      end)
      local fh, err = portalock.Lock(path):acquire({timeout = 0.2})
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
    end)

    it("excludes flock(1) while held, and no longer once released", function()
      local lock = portalock.Lock(path)
      assert(lock:acquire())
      assert.are.equal(1, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
      lock:release()
      assert.are.equal(0, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
    end)

    it("excludes flock(1) through the low-level lock()", function()
      local fh = assert(io.open(path, "a"))
      assert.are.equal(fh, portalock.lock(fh, portalock.LOCK_EX + portalock.LOCK_NB))
      assert.are.equal(1, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
      assert.is_true(portalock.unlock(fh))
      assert.are.equal(0, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
      fh:close()
    end)
  end)

  describe("with Python's portalocker", function()
    it("is excluded by a lock Python holds", function()
      peer_holds(function(ready) return python(PYTHON_HOLD, path, ready) end)
      local fh, err = portalock.Lock(path):acquire({timeout = 0.2})
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
    end)

    it("excludes Python while held, and no longer once released", function()
      local lock = portalock.Lock(path)
      assert(lock:acquire())
      assert.are.equal(1, helper.run(python(PYTHON_TRY, path)))
      lock:release()
      assert.are.equal(0, helper.run(python(PYTHON_TRY, path)))
    end)
  end)

  describe("between backends", function()
    it("ofd and posix exclude each other but not flock", function()
      local ofd = portalock.Lock(path, {backend = "ofd"})
      assert(ofd:acquire())
      assert.are.equal(1, helper.run(helper.lua_command([[
        local lock = require("portalock").Lock(..., {backend = "posix"})
        os.exit(lock:acquire({timeout = 0}) and 0 or 1)
      ]], path)))
      assert.are.equal(0, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true"))
      ofd:release()
    end)
  end)
end)
