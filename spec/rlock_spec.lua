local portalock = require "portalock"
local helper = require "spec.support.helper"

describe("RLock", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/r.lock"
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  local function free_for_others()
    return helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true") == 0
  end

  it("counts acquires per owner: the last release unlocks and closes", function()
    local rlock = portalock.RLock(path)
    local fh = assert(rlock:acquire())
    assert.are.equal("file", io.type(fh))
    assert.are.equal(fh, rlock:acquire())
    assert.are.equal(fh, rlock:acquire({timeout = 0}))
    assert.is_true(rlock:release())
    assert.is_true(rlock:release())
    assert.is_true(rlock:locked())
    assert.is_false(free_for_others())
    assert.is_true(rlock:release())
    assert.is_false(rlock:locked())
    assert.are.equal("closed file", io.type(fh))
    assert.is_true(free_for_others())
  end)

  it("raises when released more often than acquired", function()
    local rlock = portalock.RLock(path)
    assert(rlock:acquire())
    rlock:release()
    local ok, message = pcall(rlock.release, rlock)
    assert.is_false(ok)
    assert.matches("more often than acquired", message)
    assert.matches("r%.lock", message)
  end)

  it("raises when another coroutine releases it", function()
    local rlock = portalock.RLock(path)
    assert(rlock:acquire())
    local ok, message = coroutine.wrap(function() return pcall(rlock.release, rlock) end)()
    assert.is_false(ok)
    assert.matches("another owner", message)
    assert.is_true(rlock:locked())
    rlock:release()
  end)

  it("counts the main thread as an owner like any coroutine", function()
    local rlock = portalock.RLock(path)
    assert(rlock:acquire())
    local fh, err = coroutine.wrap(function() return rlock:acquire({timeout = 0}) end)()
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
    rlock:release()
    local co_fh = coroutine.wrap(function()
      local handle = assert(rlock:acquire({timeout = 0}))
      return handle
    end)()
    assert.are.equal("file", io.type(co_fh))
    -- that coroutine has ended: its hold counts as released
    assert.is_false(rlock:locked())
    assert.are.equal("closed file", io.type(co_fh))
  end)

  it("reclaims the holds of a dead coroutine at the next use", function()
    local rlock = portalock.RLock(path)
    local co = coroutine.create(function()
      assert(rlock:acquire())
      assert(rlock:acquire())
    end)
    assert(coroutine.resume(co))
    assert.are.equal("dead", coroutine.status(co))
    assert.is_false(free_for_others())
    assert.is_false(rlock:locked())
    assert.is_true(free_for_others())
    assert(rlock:acquire({timeout = 0}))
    rlock:release()
  end)

  it("reclaims the holds of a collected owner key", function()
    local key = {}
    local rlock = portalock.RLock(path, {owner = function() return key end})
    assert(rlock:acquire())
    key = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    key = {}
    assert(rlock:acquire({timeout = 0}))
    assert.is_true(rlock:release())
    assert.is_false(rlock:locked())
  end)

  it("shares holds between coroutines with the same opts.owner key", function()
    local request = {}
    local rlock = portalock.RLock(path, {owner = function() return request end})
    assert(rlock:acquire())
    local ok = coroutine.wrap(function()
      local fh = rlock:acquire({timeout = 0})
      return fh ~= nil and rlock:release()
    end)()
    assert.is_true(ok)
    assert.is_true(rlock:release())
    assert.is_false(rlock:locked())
  end)

  it("raises when opts.owner returns nil", function()
    local rlock = portalock.RLock(path, {owner = function() return nil end})
    local ok, message = pcall(rlock.acquire, rlock)
    assert.is_false(ok)
    assert.matches("owner", message)
  end)

  it("with() releases one hold on success and every hold of the owner on error", function()
    local rlock = portalock.RLock(path)
    assert(rlock:acquire())
    portalock.with(rlock, function() end)
    assert.is_true(rlock:locked())
    assert.has_error(function()
      portalock.with(rlock, function() error("boom") end)
    end, nil)
    assert.is_false(rlock:locked())
    assert.is_true(free_for_others())
  end)

  if _VERSION == "Lua 5.4" then
    it("drops every hold of the closing owner at the end of a <close> scope", function()
      local scoped = assert(load([[
        local rlock = ...
        local guard <close> = rlock
        assert(rlock:acquire())
        assert(rlock:acquire())
      ]]))
      local rlock = portalock.RLock(path)
      scoped(rlock)
      assert.is_false(rlock:locked())
      assert.is_true(free_for_others())
    end)
  end
end)
