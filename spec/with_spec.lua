local portalock = require "portalock"
local helper = require "spec.support.helper"

describe("portalock.with", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/with.lock"
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  it("passes the handle and the extra arguments, and returns every result", function()
    local lock = portalock.Lock(path)
    local n, a, b, c = (function(...) return select("#", ...), ... end)(
      portalock.with(lock, function(fh, x, y)
        assert.are.equal("file", io.type(fh))
        assert.is_true(lock:locked())
        return x, nil, y
      end, "x", "y"))
    assert.are.equal(3, n)
    assert.are.same({"x", nil, "y"}, {a, b, c})
    assert.is_false(lock:locked())
  end)

  it("releases and re-raises the original error value", function()
    local lock = portalock.Lock(path)
    local marker = {}
    local ok, err = pcall(portalock.with, lock, function() error(marker) end)
    assert.is_false(ok)
    assert.are.equal(marker, err)
    assert.is_false(lock:locked())
    local ok2, message = pcall(portalock.with, lock, function() error("plain message") end)
    assert.is_false(ok2)
    assert.matches("plain message", message)
    assert.is_false(lock:locked())
  end)

  it("raises the acquire error when the lock cannot be had", function()
    local lock = portalock.Lock(dir .. "/missing/dir.lock")
    local called = false
    local ok, err = pcall(portalock.with, lock, function() called = true end)
    assert.is_false(ok)
    assert.are.equal("LockException", err.kind)
    assert.is_false(called)
  end)
end)
