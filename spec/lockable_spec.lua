local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

local Lockable = portalock.Lockable

-- Plain Lua 5.1 cannot yield across pcall, so a locked method cannot yield there.
local YIELD_ACROSS_PCALL = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

describe("Lockable", function()
  local dir, path, children

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/obj.lock"
    children = {}
  end)

  after_each(function()
    portalock.set_scheduler(nil)
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  local function free_for_others()
    return helper.run(helper.peer_env .. "flock -n " .. helper.quote(path) .. " true") == 0
  end

  local function make_class()
    local Account = Lockable.mixin({})
    Account.__index = Account
    function Account.new(lockfile)
      return Lockable.init(setmetatable({balance = 0}, Account), {filename = lockfile})
    end
    Account.deposit = Lockable.locked(function(self, n)
      assert.is_false(free_for_others())
      self.balance = self.balance + n
      return self.balance, "deposited"
    end)
    Account.deposit_twice = Lockable.locked(function(self, n)
      self:deposit(n) -- a locked method calling another
      return self:deposit(n)
    end)
    Account.fail = Lockable.locked(function(self)
      self:deposit(1)
      error("boom")
    end)
    return Account
  end

  it("runs locked methods holding the lock; they may call each other", function()
    local account = make_class().new(path)
    assert.is_true(free_for_others())
    local balance, word = account:deposit_twice(5)
    assert.are.equal(10, balance)
    assert.are.equal("deposited", word)
    assert.is_true(free_for_others())
  end)

  it("releases when a locked method raises, and re-raises", function()
    local account = make_class().new(path)
    local ok, message = pcall(account.fail, account)
    assert.is_false(ok)
    assert.matches("boom", message)
    assert.are.equal(1, account.balance)
    assert.is_true(free_for_others())
    -- inside an outer hold, only the inner holds are dropped
    assert.is_true(account:acquire())
    assert.is_false(pcall(account.fail, account))
    assert.is_false(free_for_others())
    assert.is_true(account:release())
    assert.is_true(free_for_others())
  end)

  it("acquire and release are counted per owner; release by a non-owner raises", function()
    local account = make_class().new(path)
    assert.is_true(account:acquire())
    assert.is_true(account:acquire({blocking = false}))
    local ok, err = coroutine.wrap(function() return account:acquire({blocking = false}) end)()
    assert.is_false(ok)
    assert.are.equal("AlreadyLocked", err.kind)
    local raised, message = coroutine.wrap(function() return pcall(account.release, account) end)()
    assert.is_false(raised)
    assert.matches("cannot release Lockable", message)
    assert.matches("another owner", message)
    assert.is_true(account:release())
    assert.is_false(free_for_others())
    assert.is_true(account:release())
    assert.is_true(free_for_others())
    raised, message = pcall(account.release, account)
    assert.is_false(raised)
    assert.matches("not held", message)
  end)

  it("works with portalock.with(), releasing on error too", function()
    local account = make_class().new(path)
    assert.are.equal(3, portalock.with(account, function(token)
      assert.is_true(token)
      return account:deposit(3)
    end))
    assert.is_true(free_for_others())
    assert.is_false(pcall(portalock.with, account, function() error("x") end))
    assert.is_true(free_for_others())
  end)

  it("makes a plain table Lockable with init, and shares one lock per file in a state", function()
    local a = Lockable.init({}, {filename = path})
    local b = Lockable.init({}, {name = "obj", directory = dir})
    assert.is_true(a:acquire())
    assert.is_false(free_for_others())
    assert.is_true(b:acquire({blocking = false})) -- the same file, the same owner
    assert.is_true(b:release())
    assert.is_true(a:release())
    assert.is_true(free_for_others())
    local other = Lockable.init({}, {filename = dir .. "/other.lock"})
    local call_a = Lockable.locked(function() return "a" end)
    local call_other = Lockable.locked(function() return call_a(a) end)
    assert.are.equal("a", call_other(other))
  end)

  -- One rule, decided in C: the first usable of $TMPDIR, $TEMP, $TMP, ... made absolute.
  it("puts a named lock in the bounded semaphores' default directory", function()
    assert.are.equal(0, helper.run("mkdir " .. helper.quote(dir .. "/sub")))
    local code = [[
      local portalock = require "portalock"
      local obj = portalock.Lockable.init({}, {name = "envdir"})
      assert(obj:acquire())
      assert(obj:release())
      print(portalock.BoundedSemaphore(1).directory)
    ]]
    local output, status = helper.capture("cd " .. helper.quote(dir) .. " && TMPDIR="
      .. helper.quote(dir .. "/missing") .. " TEMP=sub " .. helper.lua_command(code))
    assert.are.equal(0, status, output)
    assert.are.equal(dir .. "/sub\n", output)
    assert.is_true(helper.exists(dir .. "/sub/envdir.lock"))
  end)

  it("without a scheduler, another coroutine does not wait forever (it would deadlock)", function()
    local account = make_class().new(path)
    assert.is_true(account:acquire())
    local started = core.monotonic()
    local ok, err = coroutine.wrap(function() return account:acquire() end)()
    assert.is_false(ok)
    assert.matches("deadlock", err.message)
    local raised, message = coroutine.wrap(function() return pcall(account.deposit, account, 1) end)()
    assert.is_false(raised)
    assert.matches("deadlock", tostring(message))
    assert.is_true(core.monotonic() - started < 2)
    assert.is_true(account:release())
  end)

  -- A tiny scheduler: coroutines yield the seconds they want to sleep.
  local function run_all(functions)
    portalock.set_scheduler(function(seconds) coroutine.yield(seconds) end)
    local tasks = {}
    for i, fn in ipairs(functions) do
      tasks[i] = {co = coroutine.create(fn), wake = 0}
    end
    local deadline = core.monotonic() + 15
    while true do
      local pending = false
      for _, task in ipairs(tasks) do
        if coroutine.status(task.co) ~= "dead" and core.monotonic() >= task.wake then
          local ok, seconds = coroutine.resume(task.co)
          assert(ok, seconds)
          task.wake = core.monotonic() + (tonumber(seconds) or 0)
        end
        pending = pending or coroutine.status(task.co) ~= "dead"
      end
      if not pending then
        break
      end
      assert(core.monotonic() < deadline, "scheduler deadline passed")
      helper.sleep(0.001)
    end
    portalock.set_scheduler(nil)
  end

  it("excludes across coroutines with a scheduler (acquire, yield, release)", function()
    local account = make_class().new(path)
    local inside, most, total = 0, 0, 0
    local function worker()
      for _ = 1, 5 do
        assert.is_true(account:acquire())
        inside = inside + 1
        most = math.max(most, inside)
        local before = total
        coroutine.yield(0.002)
        total = before + 1
        inside = inside - 1
        assert.is_true(account:release())
        coroutine.yield(0)
      end
    end
    run_all({worker, worker, worker})
    assert.are.equal(1, most)
    assert.are.equal(15, total)
    assert.is_true(free_for_others())
  end)

  if YIELD_ACROSS_PCALL then
    it("excludes locked methods across coroutines with a scheduler", function()
      local Counter = Lockable.mixin({})
      Counter.__index = Counter
      local counter = Lockable.init(setmetatable({value = 0, inside = 0, most = 0}, Counter), {filename = path})
      local function bump(self)
        self.inside = self.inside + 1
        self.most = math.max(self.most, self.inside)
        local before = self.value
        coroutine.yield(0.002) -- another coroutine runs here
        self.value = before + 1
        self.inside = self.inside - 1
      end
      Counter.unlocked_bump = bump
      Counter.bump = Lockable.locked(bump)
      local function run(method)
        counter.value, counter.most = 0, 0
        local function worker()
          for _ = 1, 5 do
            counter[method](counter)
            coroutine.yield(0)
          end
        end
        run_all({worker, worker, worker})
        return counter.value, counter.most
      end
      -- the control: without the lock, updates are lost
      local value, most = run("unlocked_bump")
      assert.is_true(value < 15 and most > 1, "unlocked: " .. value .. ", " .. most)
      value, most = run("bump")
      assert.are.equal(15, value)
      assert.are.equal(1, most)
    end)
  end

  describe("across processes", function()
    local function spawn(...)
      local log = dir .. "/worker." .. (#children + 1) .. ".log"
      children[#children + 1] = helper.spawn(helper.script_command("lockable_worker", path, ...), log)
      return children[#children], log
    end

    local function wait_exit(pid)
      assert.is_true(helper.wait_until(function() return not helper.alive(pid) end, 15),
        "child " .. pid .. " hangs")
    end

    it("times out, fails at once without blocking, and waits for a holder by default", function()
      local ready = dir .. "/ready"
      local pid, log = spawn("hold", ready, "4") -- longer than every bound below
      assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10), helper.read(log))
      local account = make_class().new(path)
      local started = core.monotonic()
      local ok, err = account:acquire({timeout = 0.3})
      local elapsed = core.monotonic() - started
      assert.is_false(ok)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(elapsed >= 0.25 and elapsed < 3, "elapsed " .. elapsed)
      started = core.monotonic()
      assert.is_false((account:acquire({blocking = false, timeout = 10})))
      assert.is_true(core.monotonic() - started < 1)
      assert.is_true(helper.alive(pid))
      -- the default timeout is forever: this waits for the child's release
      assert.are.equal(1, account:deposit(1))
      wait_exit(pid)
      assert.are.equal("", helper.read(log))
    end)

    it("keeps 3 processes x 150 locked read-modify-writes exact", function()
      local counter = dir .. "/counter"
      helper.write(counter, "0")
      local commands = {}
      for i = 1, 3 do
        commands[i] = "( " .. helper.script_command("lockable_worker", path, "count", counter, "150")
          .. " > " .. helper.quote(dir .. "/count." .. i .. ".log") .. " 2>&1 )"
      end
      assert.are.equal(0, helper.run(table.concat(commands, " & ") .. " & wait"))
      for i = 1, 3 do
        assert.are.equal("", helper.read(dir .. "/count." .. i .. ".log"))
      end
      assert.are.equal("450", helper.read(counter))
    end)
  end)

  describe("bad input", function()
    local function raises(fragments, fn, ...)
      local ok, message = pcall(fn, ...)
      assert.is_false(ok, "no error raised")
      assert.are.equal("string", type(message))
      for _, fragment in ipairs(fragments) do
        assert.is_truthy(message:find(fragment, 1, true), "'" .. fragment .. "' not in: " .. message)
      end
    end

    local cases = {
      {{"bad argument 'obj' to 'Lockable.init' (nil)", "table"}, function() Lockable.init(nil, {filename = "x"}) end},
      {{"'obj'", '"x"'}, function() Lockable.init("x", {filename = "x"}) end},
      {{"'opts' to 'Lockable.init'", "filename"}, function() Lockable.init({}) end},
      {{"'opts' to 'Lockable.init'", "needs 'filename'"}, function() Lockable.init({}, {}) end},
      {{"either 'filename' or 'name'"}, function() Lockable.init({}, {filename = "a", name = "b"}) end},
      {{"unknown option", '"file"'}, function() Lockable.init({}, {file = "a"}) end},
      {{"'opts'", "table"}, function() Lockable.init({}, "a.lock") end},
      {{"bad argument 'filename' to 'Lockable.init' (42)"}, function() Lockable.init({}, {filename = 42}) end},
      {{"'filename'", "empty"}, function() Lockable.init({}, {filename = ""}) end},
      {{"'name'", '"a/b"'}, function() Lockable.init({}, {name = "a/b"}) end},
      {{"'name'", '".."'}, function() Lockable.init({}, {name = ".."}) end},
      {{"'timeout' to 'Lockable.init' (-1)", "infinity waits forever"},
        function() Lockable.init({}, {filename = "a", timeout = -1}) end},
      {{"'check_interval'", ">= 0"}, function() Lockable.init({}, {filename = "a", check_interval = -1}) end},
      {{"'owner'", "function"}, function() Lockable.init({}, {filename = "a", owner = "me"}) end},
      {{"bad argument 'Class' to 'Lockable.mixin' (5)"}, function() Lockable.mixin(5) end},
      {{"bad argument 'fn' to 'Lockable.locked' (\"f\")", "function"}, function() Lockable.locked("f") end},
      {{"read-only"}, function() Lockable.extra = 1 end},
    }
    for i, case in ipairs(cases) do
      it("raises for case " .. i .. " (" .. case[1][1] .. ")", function()
        raises(case[1], case[2])
      end)
    end

    it("raises for a second init, bad acquire options and methods on a non-Lockable", function()
      local obj = Lockable.init({}, {filename = path})
      raises({"'obj'", "already Lockable"}, Lockable.init, obj, {filename = path})
      raises({"unknown option", '"block"'}, obj.acquire, obj, {block = false})
      raises({"'blocking'", "boolean"}, obj.acquire, obj, {blocking = 0})
      raises({"'timeout' to 'acquire' (-1)"}, obj.acquire, obj, {timeout = -1})
      raises({"'self'", "not a Lockable"}, obj.acquire, {})
      raises({"'self'", "not a Lockable"}, obj.release, 5)
      raises({"'self'", "not a Lockable"}, Lockable.locked(function() end), {})
      assert.is_true(free_for_others())
    end)
  end)
end)
