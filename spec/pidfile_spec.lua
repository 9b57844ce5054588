local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

describe("PidFileLock", function()
  local dir, path, children

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/service.pid"
    children = {}
  end)

  after_each(function()
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  it("locks a sidecar, writes the PID and removes both on release", function()
    local lock = portalock.PidFileLock(path)
    assert.are.equal(path .. ".lock", lock.lock_filename)
    assert.are.equal(path, lock.filename)
    assert(lock:acquire())
    assert.are.equal(core.getpid(), portalock.read_pid(path))
    assert.are.equal(1, helper.run(helper.peer_env .. "flock -n " .. helper.quote(path .. ".lock") .. " true"))
    assert.is_true(lock:release())
    assert.is_false(helper.exists(path))
    assert.is_false(helper.exists(path .. ".lock")) -- as portalocker 4.x
    assert.is_nil(portalock.read_pid(path))
  end)

  it("defaults to .pid in the working directory", function()
    assert.are.equal("/.pid", portalock.PidFileLock().filename:sub(-5))
  end)

  it("names the holder's PID on contention, in the field and the message", function()
    local pid = helper.hold("PidFileLock", path, dir)
    children[1] = pid
    -- at once, and after waiting (the message of the Lua wait loop named no PID)
    for _, opts in ipairs({{}, {fail_when_locked = false, timeout = 0.1, check_interval = 0.02}}) do
      local fh, err = portalock.PidFileLock(path):acquire(opts)
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.are.equal(pid, err.holder_pid)
      assert.matches("' is locked by process " .. pid .. ": gave up ", err.message, 1, true)
    end
  end)

  it("names no holder when the PID file names a dead process", function()
    children[1] = helper.hold("PidFileLock", path, dir)
    local dead = tonumber((helper.capture("sh -c 'echo $$'")))
    helper.write(path, dead .. "\n")
    assert.are.equal(dead, portalock.read_pid(path))
    for _, opts in ipairs({{}, {fail_when_locked = false, timeout = 0.1, check_interval = 0.02}}) do
      local fh, err = portalock.PidFileLock(path):acquire(opts)
      assert.is_nil(fh)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_nil(err.holder_pid)
    end
  end)

  describe("read_pid", function()
    local cases = {
      {"12345\n", 12345}, {"  77  ", 77}, {"12a", nil}, {"", nil}, {"0", nil}, {"-5", nil},
      {"+5", nil}, {"1.5", nil}, {"0x10", nil},
    }
    for _, case in ipairs(cases) do
      it("reads " .. string.format("%q", case[1]) .. " strictly", function()
        helper.write(path, case[1])
        assert.are.equal(case[2], portalock.read_pid(path))
      end)
    end

    it("answers nil for a missing file", function()
      assert.is_nil(portalock.read_pid(dir .. "/nothing.pid"))
    end)

    it("answers nil for a symlink, whatever it points at", function()
      helper.write(path, "12345\n")
      assert.are.equal(0, helper.run("ln -s " .. helper.quote(path) .. " " .. helper.quote(dir .. "/link.pid")))
      assert.is_nil(portalock.read_pid(dir .. "/link.pid"))
    end)
  end)
end)
