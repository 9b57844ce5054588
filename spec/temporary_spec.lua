local portalock = require "portalock"
local helper = require "spec.support.helper"

describe("TemporaryFileLock", function()
  local dir, path, children

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/temp.lock"
    children = {}
  end)

  after_each(function()
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  it("creates the file while held and removes it on release", function()
    local lock = portalock.TemporaryFileLock(path)
    local fh = assert(lock:acquire())
    assert.are.equal("file", io.type(fh))
    assert.is_true(helper.exists(path))
    assert.is_true(lock:release())
    assert.is_false(helper.exists(path))
    assert.is_false(lock:locked())
  end)

  it("defaults to .lock in the working directory", function()
    local lock = portalock.TemporaryFileLock()
    assert.are.equal("/.lock", lock.filename:sub(-6))
  end)

  it("fails at the first contention by default", function()
    children[1] = helper.hold("TemporaryFileLock", path, dir)
    local fh, err = portalock.TemporaryFileLock(path, {timeout = 10}):acquire()
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.matches("fail_when_locked", err.message)
  end)

  it("is exclusive only", function()
    local ok, message = pcall(portalock.TemporaryFileLock, path, {flags = portalock.LOCK_SH})
    assert.is_false(ok)
    assert.matches("bad argument 'flags' to 'TemporaryFileLock'", message, 1, true)
    assert.matches("exclusive", message)
  end)
end)
