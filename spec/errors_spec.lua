local portalock = require "portalock"
local helper = require "spec.support.helper"

describe("error objects", function()
  local dir

  before_each(function()
    dir = helper.tmpdir()
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  local function contention_error()
    local path = dir .. "/e.lock"
    local holder = assert(io.open(path, "a"))
    portalock.lock(holder, portalock.LOCK_EX + portalock.LOCK_NB)
    local fh = assert(io.open(path, "a"))
    local _, err = portalock.lock(fh, portalock.LOCK_EX + portalock.LOCK_NB)
    holder:close()
    fh:close()
    return err
  end

  local function system_error()
    local _, err = portalock.Lock(dir .. "/no/such/dir.lock"):acquire()
    return err
  end

  it("carries kind, message, errno and path", function()
    local err = system_error()
    assert.are.equal("LockException", err.kind)
    assert.are.equal("string", type(err.message))
    assert.are.equal(2, err.errno)
    assert.are.equal("string", type(err.path))
  end)

  it("classifies AlreadyLocked as a LockException, not the other way round", function()
    local contended, failed = contention_error(), system_error()
    assert.are.equal("AlreadyLocked", contended.kind)
    assert.is_true(contended:is(portalock.AlreadyLocked))
    assert.is_true(contended:is(portalock.LockException))
    assert.is_true(failed:is(portalock.LockException))
    assert.is_false(failed:is(portalock.AlreadyLocked))
  end)

  it("converts to a string and concatenates on both sides", function()
    local err = system_error()
    local text = tostring(err)
    assert.matches("^LockException: ", text)
    assert.matches(err.message, text, 1, true)
    assert.are.equal("failed: " .. text, "failed: " .. err)
    assert.are.equal(text .. "!", err .. "!")
  end)

  it("is raised as the object itself by with()", function()
    local ok, err = pcall(portalock.with, portalock.Lock(dir .. "/no/such/dir.lock"), function() end)
    assert.is_false(ok)
    assert.is_true(err:is(portalock.LockException))
  end)
end)
