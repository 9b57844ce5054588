local portalock = require "portalock"
local helper = require "spec.support.helper"
local testhelper = require "portalock_testhelper"

-- Acquire/release cycles must leave no descriptor behind.
describe("descriptor leaks", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/leak.lock"
    collectgarbage()
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  local function no_leak(cycles, body)
    local before = testhelper.fd_count()
    for i = 1, cycles do
      body(i)
    end
    -- no collectgarbage() first: every descriptor must be closed eagerly, not by a finalizer
    assert.are.equal(before, testhelper.fd_count())
  end

  it("after 10,000 acquire/release cycles of one Lock", function()
    local lock = portalock.Lock(path)
    no_leak(10000, function()
      assert(lock:acquire())
      assert(lock:release())
    end)
  end)

  it("when the user closes the handle instead of releasing", function()
    local lock = portalock.Lock(path)
    no_leak(1000, function()
      local fh = assert(lock:acquire())
      fh:close()
      assert.is_false(lock:locked())
    end)
  end)

  it("for fresh objects of every kind", function()
    no_leak(500, function()
      for _, class in ipairs({"Lock", "RLock", "TemporaryFileLock", "PidFileLock"}) do
        local lock = portalock[class](dir .. "/" .. class)
        assert(lock:acquire())
        assert(lock:release())
      end
    end)
  end)

  it("for contended attempts and failures", function()
    local holder = helper.hold("Lock", path, dir)
    no_leak(500, function()
      assert.is_nil((portalock.Lock(path):acquire({timeout = 0})))
      assert.is_nil((portalock.Lock(dir .. "/missing/x"):acquire()))
    end)
    helper.kill(holder)
  end)
end)
