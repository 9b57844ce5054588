local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

-- How waits sleep inside OpenResty, checked with a stand-in `ngx` table.
describe("waiting inside OpenResty", function()
  local dir, path, holder, sleeps

  setup(function()
    dir = helper.tmpdir()
    path = dir .. "/nginx.lock"
    holder = helper.hold("Lock", path, dir)
  end)

  teardown(function()
    helper.kill(holder)
    helper.rmtree(dir)
  end)

  local function fake_ngx(phase)
    sleeps = {}
    _G.ngx = {
      get_phase = function() return phase end,
      sleep = function(seconds)
        sleeps[#sleeps + 1] = seconds
        helper.sleep(seconds)
      end,
    }
  end

  after_each(function()
    _G.ngx = nil
  end)

  it("yields with ngx.sleep in the content phase, backing off from 1 ms to check_interval", function()
    fake_ngx("content")
    local fh, err = portalock.Lock(path, {timeout = 0.3, check_interval = 0.05}):acquire()
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(#sleeps >= 4)
    assert.is_true(math.abs(sleeps[1] - 0.001) < 1e-9)
    assert.is_true(sleeps[2] > sleeps[1])
    for _, seconds in ipairs(sleeps) do
      assert.is_true(seconds <= 0.05 + 1e-9)
    end
  end)

  it("fails at once, naming the phase, where ngx.sleep is disabled", function()
    fake_ngx("log")
    local started = core.monotonic()
    local fh, err = portalock.Lock(path, {timeout = 5}):acquire()
    assert.is_nil(fh)
    assert.are.equal("LockException", err.kind)
    assert.matches("'log' phase", err.message)
    assert.are.equal(0, #sleeps)
    assert.is_true(core.monotonic() - started < 1)
  end)

  it("still makes non-blocking attempts where ngx.sleep is disabled", function()
    fake_ngx("header_filter")
    local _, err = portalock.Lock(path, {fail_when_locked = true}):acquire()
    assert.are.equal("AlreadyLocked", err.kind)
    local free = portalock.Lock(dir .. "/free.lock")
    assert(free:acquire({timeout = 0}))
    free:release()
  end)

  it("blocks in the init phase instead of sleeping through nginx", function()
    fake_ngx("init")
    local started = core.monotonic()
    local _, err = portalock.Lock(path, {timeout = 0.3}):acquire()
    assert.are.equal("AlreadyLocked", err.kind)
    assert.are.equal(0, #sleeps)
    assert.is_true(core.monotonic() - started >= 0.25)
  end)
end)
