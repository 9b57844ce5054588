local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

describe("across processes", function()
  local dir, path, children

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/shared.lock"
    children = {}
  end)

  after_each(function()
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  local function hold(class, opts)
    local pid = helper.hold(class or "Lock", path, dir, opts)
    children[#children + 1] = pid
    return pid
  end

  it("times out after about the timeout while a child holds the lock", function()
    hold()
    local lock = portalock.Lock(path, {timeout = 0.5})
    local started = core.monotonic()
    local fh, err = lock:acquire()
    local elapsed = core.monotonic() - started
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(err:is(portalock.LockException))
    assert.are.equal(path, err.path)
    assert.matches("timeout", err.message)
    assert.is_true(elapsed >= 0.4 and elapsed < 3, "elapsed " .. elapsed)
  end)

  it("returns at once with fail_when_locked", function()
    hold()
    local lock = portalock.Lock(path, {timeout = 10, fail_when_locked = true})
    local started = core.monotonic()
    local fh, err = lock:acquire()
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(core.monotonic() - started < 1)
  end)

  it("acquires as soon as the holder lets go", function()
    hold()
    helper.write(dir .. "/release", "")
    local lock = portalock.Lock(path, {timeout = 10})
    assert(lock:acquire())
    lock:release()
  end)

  it("is freed when the holder is killed with SIGKILL", function()
    local pid = hold()
    local lock = portalock.Lock(path)
    assert.is_nil((lock:acquire({timeout = 0})))
    helper.kill(pid, "KILL")
    assert.is_true(helper.wait_until(function() return not helper.alive(pid) end, 5))
    local fh = assert(lock:acquire({timeout = 5}))
    assert.are.equal("file", io.type(fh))
    lock:release()
  end)

  it('never truncates a file held by another process in "w" mode', function()
    hold()
    local before = helper.read(path)
    assert.matches("^held by %d+\n$", before)
    local lock = portalock.Lock(path, {mode = "w"})
    assert.is_nil((lock:acquire({timeout = 0.2})))
    assert.are.equal(before, helper.read(path))
  end)

  it("makes a second RLock owner in another process wait", function()
    hold("RLock")
    local fh, err = portalock.RLock(path):acquire({timeout = 0.2})
    assert.is_nil(fh)
    assert.are.equal("AlreadyLocked", err.kind)
  end)

  it("hands the next holder everything the last one wrote through its handle, flushed", function()
    local commands = {}
    for i = 1, 4 do
      commands[i] = "( " .. helper.script_command("append", path, "500")
        .. " > " .. helper.quote(dir .. "/append." .. i .. ".log") .. " 2>&1 )"
    end
    assert.are.equal(0, helper.run(table.concat(commands, " & ") .. " & wait"))
    for i = 1, 4 do
      assert.are.equal("", helper.read(dir .. "/append." .. i .. ".log"))
    end
    local expected = {}
    for line = 1, 2000 do
      expected[line] = line .. "\n"
    end
    assert.are.equal(table.concat(expected), helper.read(path))
  end)

  describe("4 processes x 2000 increments of a shared counter", function()
    local cases = {
      {"Lock", "flock"}, {"Lock", "ofd"}, {"Lock", "posix"}, {"RLock", "flock"},
    }
    for _, case in ipairs(cases) do
      local class, backend = case[1], case[2]
      it("end at exactly 8000 with " .. class .. " and the " .. backend .. " backend", function()
        local counter = dir .. "/counter"
        helper.write(counter, "0")
        local commands = {}
        for i = 1, 4 do
          commands[i] = "( " .. helper.script_command("count", class, path, counter, "2000", backend)
            .. " > " .. helper.quote(dir .. "/count." .. i .. ".log") .. " 2>&1 )"
        end
        local code = helper.run(table.concat(commands, " & ") .. " & wait")
        assert.are.equal(0, code)
        for i = 1, 4 do
          assert.are.equal("", helper.read(dir .. "/count." .. i .. ".log"))
        end
        assert.are.equal("8000", helper.read(counter))
      end)
    end
  end)
end)
