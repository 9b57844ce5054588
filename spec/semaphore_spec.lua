local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

describe("Semaphore (counting)", function()
  local dir, names, children

  before_each(function()
    dir = helper.tmpdir()
    names = {}
    children = {}
  end)

  after_each(function()
    for _, pid in ipairs(children) do
      helper.kill(pid)
    end
    for _, name in ipairs(names) do
      portalock.Semaphore.unlink(name)
    end
    helper.rmtree(dir)
  end)

  -- A name unique to this run and test, unlinked after it.
  local function fresh(tag)
    local name = string.format("spec.%d.%s", core.getpid(), tag)
    portalock.Semaphore.unlink(name)
    names[#names + 1] = name
    return name
  end

  local function elapsed_of(fn)
    local started = core.monotonic()
    local a, b = fn()
    return core.monotonic() - started, a, b
  end

  local function spawn(name, ...)
    local log = dir .. "/worker." .. (#children + 1) .. ".log"
    children[#children + 1] = helper.spawn(helper.script_command("semaphore_worker", name, ...), log)
    return children[#children], log
  end

  local function wait_exit(pid)
    assert.is_true(helper.wait_until(function() return not helper.alive(pid) end, 15),
      "child " .. pid .. " hangs")
  end

  it("counts: acquire takes, release gives back, get_value reads", function()
    local sem = portalock.Semaphore(2, {name = fresh("count")})
    assert.are.equal(2, sem:get_value())
    assert.is_true(sem:acquire())
    assert.is_true(sem:acquire({timeout = 0}))
    assert.are.equal(0, sem:get_value())
    assert.are.equal(2, sem:held())
    local elapsed, ok, err = elapsed_of(function() return sem:acquire({block = false, timeout = 30}) end)
    assert.is_false(ok)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(elapsed < 1, "block = false waited " .. elapsed)
    elapsed, ok = elapsed_of(function() return sem:acquire({timeout = 0.3}) end)
    assert.is_false(ok)
    assert.is_true(elapsed >= 0.28 and elapsed < 3, "elapsed " .. elapsed)
    assert.is_true(sem:release())
    assert.are.equal(1, sem:get_value())
    assert.are.equal(1, sem:held())
    assert.is_true(sem:release(1))
    assert.are.equal(2, sem:get_value())
    assert.are.equal(0, sem:held())
  end)

  it("release(n) posts n, with or without acquiring", function()
    local sem = portalock.Semaphore(0, {name = fresh("release_n")})
    assert.is_true(sem:release(3))
    assert.are.equal(3, sem:get_value())
    assert.are.equal(0, sem:held())
    for _ = 1, 3 do
      assert.is_true(sem:acquire({timeout = 0}))
    end
    assert.is_false((sem:acquire({timeout = 0})))
    assert.is_true(sem:release(2))
    assert.are.equal(1, sem:held())
    assert.are.equal(2, sem:get_value())
  end)

  it("refuses a release beyond SEM_VALUE_MAX without posting anything", function()
    local sem = portalock.Semaphore(core.SEM_VALUE_MAX - 1, {name = fresh("overflow")})
    local ok, err = sem:release(2)
    assert.is_nil(ok)
    assert.are.equal("LockException", err.kind)
    assert.matches("SEM_VALUE_MAX", err.message)
    assert.are.equal(core.SEM_VALUE_MAX - 1, sem:get_value())
    assert.is_true(sem:release())
    assert.are.equal(core.SEM_VALUE_MAX, sem:get_value())
  end)

  it("initialises only a semaphore that does not exist yet", function()
    local name = fresh("init")
    local first = portalock.Semaphore(3, {name = name})
    assert.is_true(first:acquire())
    local second = portalock.Semaphore(10, {name = name})
    assert.are.equal(2, second:get_value())
    assert.are.equal(name, second.name)
  end)

  it("__close and with() release exactly what the object acquired", function()
    local name = fresh("close")
    local a = portalock.Semaphore(5, {name = name})
    local b = portalock.Semaphore(5, {name = name})
    assert.is_true(a:acquire())
    assert.is_true(a:acquire())
    assert.is_true(b:acquire())
    assert.are.equal(2, a:get_value())
    getmetatable(a).__close(a) -- what `local a <close>` runs at the end of its scope
    assert.are.equal(4, a:get_value())
    assert.are.equal(0, a:held())
    assert.are.equal(1, b:held())
    getmetatable(a).__close(a) -- nothing held: nothing posted
    assert.are.equal(4, a:get_value())

    assert.are.equal("result", portalock.with(a, function(token)
      assert.is_true(token)
      assert.are.equal(3, a:get_value())
      return "result"
    end))
    assert.are.equal(4, a:get_value())
    local ok, message = pcall(portalock.with, a, function()
      assert.is_true(a:acquire()) -- a second count inside: both are given back on error
      error("boom")
    end)
    assert.is_false(ok)
    assert.matches("boom", message)
    assert.are.equal(4, a:get_value())
    assert.are.equal(1, b:held())
  end)

  if _VERSION == "Lua 5.4" then
    it("scopes a hold with <close> (Lua 5.4)", function()
      local name = fresh("tbc")
      local chunk = assert(load([[
        local portalock, name = ...
        do
          local sem <close> = portalock.Semaphore(1, {name = name})
          assert(sem:acquire())
          assert(sem:get_value() == 0)
        end
      ]]))
      chunk(portalock, name)
      assert.are.equal(1, portalock.Semaphore(0, {name = name}):get_value())
    end)
  end

  it("unlinks: the next open creates a new semaphore, the old object keeps the old one", function()
    local name = fresh("unlink")
    local sem = portalock.Semaphore(1, {name = name})
    assert.is_true(sem:acquire())
    assert.is_true(helper.exists("/dev/shm/sem.portalock." .. name))
    assert.is_true(sem:unlink())
    assert.is_false(helper.exists("/dev/shm/sem.portalock." .. name))
    local ok, err = portalock.Semaphore.unlink(name)
    assert.is_nil(ok)
    assert.are.equal("LockException", err.kind)
    assert.is_number(err.errno)
    assert.are.equal(7, portalock.Semaphore(7, {name = name}):get_value())
    assert.are.equal(0, sem:get_value())
  end)

  it("is created 0600 unless opts.perm says otherwise, exactly; the constructor touches nothing", function()
    local name = fresh("perm")
    local path = "/dev/shm/sem.portalock." .. name
    local sem = portalock.Semaphore(1, {name = name})
    assert.is_false(helper.exists(path))
    sem:get_value()
    local mode = helper.capture("stat -c %a " .. helper.quote(path))
    assert.are.equal("600\n", mode)
    sem:unlink()
    -- not masked by the umask (perm_spec: what that lets other users do)
    assert.are.equal("", helper.capture("umask 077 && " .. helper.lua_command([[
require("portalock").Semaphore(1, {name = ..., perm = tonumber("640", 8)}):get_value()
]], name)))
    mode = helper.capture("stat -c %a " .. helper.quote(path))
    assert.are.equal("640\n", mode)
  end)

  describe("a semaphore file planted by another user", function()
    -- As root: nobody plants the file. Not root: there is no other user to play.
    local as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
    local is_root = helper.run("test \"$(id -u)\" = 0") == 0

    -- Five non-blocking acquires, then one with a timeout, in a process of their own (a
    -- mapped empty file killed the process with SIGBUS), with option perm (octal digits,
    -- default 600): prints how each ended.
    local ACQUIRES = [[
local name, perm = ...
local portalock = require "portalock"
local sem = portalock.Semaphore(1, {name = name, perm = tonumber(perm or "600", 8)})
for _ = 1, 5 do
  local ok, err = sem:acquire({block = false})
  print(ok and "granted" or err.kind .. ": " .. err.message)
end
local ok, err = sem:acquire({timeout = 1})
print(ok and "granted" or err.kind .. ": " .. err.message)
]]

    local function expect_refused(name, mode, size, why, perm)
      local output, code = helper.capture(helper.lua_command(ACQUIRES, name, perm))
      assert.are.equal(0, code, output)
      local line = string.format("LockException: Semaphore '%s': refusing '/dev/shm/sem.portalock.%s' "
        .. "(owned by nobody (uid 65534), mode %s, %d bytes): %s\n", name, name, mode, size, why)
      assert.are.equal(line:rep(6), output)
    end

    it("refuses an empty file, and a 0666 semaphore with 100 counts", function()
      if not is_root then
        pending("needs root, to plant the files as the user nobody")
        return
      end
      local empty, open = fresh("planted.empty"), fresh("planted.open")
      assert.are.equal(0, helper.run(as_nobody .. "sh -c 'umask 022 && touch /dev/shm/sem.portalock."
        .. empty .. "'"))
      assert.are.equal(0, helper.run(as_nobody .. helper.peer_env .. helper.python .. " -c "
        .. helper.quote("import _multiprocessing, sys; _multiprocessing.SemLock(1, 100, 100, "
          .. "'/portalock.' + sys.argv[1], False)") .. " " .. open
        .. " && " .. as_nobody .. "chmod 666 /dev/shm/sem.portalock." .. open))
      -- whose it is comes before its size
      local unshared = "another user owns it (this process runs as root (uid 0); option 'perm' 0600 "
        .. "does not share it)"
      -- for a file its creator shared: the perm that shares it here too
      local share = "; give this object option perm 0666 (438 in decimal) to share it"
      expect_refused(empty, "0644", 0, unshared)
      expect_refused(open, "0666", 32, unshared .. share)
      expect_refused(open, "0666", 32, "another user owns it (this process runs as root (uid 0); "
        .. "option 'perm' 0660 grants less than its mode)" .. share, "660")
    end)

    it("is shared with another user when both ask for it with opts.perm", function()
      if not is_root then
        pending("needs root, to meet root's semaphore as the user nobody")
        return
      end
      local name = fresh("shared")
      local made = helper.capture("umask 0 && " .. helper.lua_command([[
local sem = require("portalock").Semaphore(2, {name = ..., perm = tonumber("666", 8)})
print(sem:get_value())
]], name))
      assert.are.equal("2\n", made)
      local shared = helper.capture(as_nobody .. helper.lua_command([[
local sem = require("portalock").Semaphore(1, {name = ..., perm = tonumber("666", 8)})
local ok, err = sem:acquire({block = false})
print(ok and "granted" or err.message, sem:get_value())
]], name))
      assert.are.equal("granted\t1\n", shared)
      local refused = helper.capture(as_nobody .. helper.lua_command(ACQUIRES, name))
      assert.matches("^LockException: Semaphore '" .. name .. "': refusing .- %(owned by root %(uid 0%), "
        .. "mode 0666, 32 bytes%): another user owns it", refused)
    end)
  end)

  it("generates a name when none is given", function()
    local sem = portalock.Semaphore(1)
    assert.matches("^semaphore%.%x+$", sem.name)
    assert.are.equal(26, #sem.name)
    names[#names + 1] = sem.name
    assert.is_true(sem:acquire())
    assert.are.equal(0, portalock.Semaphore(1, {name = sem.name}):get_value())
  end)

  it("lets a waiting coroutine yield to a scheduler", function()
    local sem = portalock.Semaphore(0, {name = fresh("yield")})
    local yields = 0
    portalock.set_scheduler(function(seconds) coroutine.yield(seconds) end)
    local co = coroutine.create(function() return sem:acquire({timeout = 0.3}) end)
    local ok, result
    repeat
      local resumed
      resumed, result = coroutine.resume(co)
      assert.is_true(resumed, tostring(result))
      if coroutine.status(co) == "suspended" then
        yields = yields + 1
        helper.sleep(result)
      else
        ok = result
      end
    until coroutine.status(co) == "dead"
    portalock.set_scheduler(nil)
    assert.is_false(ok)
    assert.is_true(yields >= 2, "yields " .. yields)
  end)

  describe("across processes", function()
    it("wakes a waiting process on release, and makes another time out", function()
      local name = fresh("wake")
      local sem = portalock.Semaphore(0, {name = name})
      local ready = dir .. "/ready"
      local pid, log = spawn(name, "wait", "10", ready)
      assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10), helper.read(log))
      helper.sleep(0.3)
      assert.is_true(helper.alive(pid))
      local started = core.monotonic()
      assert.is_true(sem:release())
      wait_exit(pid)
      assert.is_true(core.monotonic() - started < 5)
      assert.are.equal("acquired\n", helper.read(log))

      local ready2 = dir .. "/ready2"
      local pid2, log2 = spawn(name, "wait", "0.5", ready2)
      wait_exit(pid2)
      assert.are.equal("timeout\n", helper.read(log2))
    end)

    it("release(2) lets exactly two of three waiting processes through", function()
      local name = fresh("two")
      local sem = portalock.Semaphore(0, {name = name})
      local logs, pids = {}, {}
      for i = 1, 3 do
        local ready = dir .. "/ready." .. i
        pids[i], logs[i] = spawn(name, "wait", "2", ready)
        assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10), helper.read(logs[i]))
      end
      helper.sleep(0.3)
      assert.is_true(sem:release(2))
      local outcomes = {acquired = 0, timeout = 0}
      for i = 1, 3 do
        wait_exit(pids[i])
        local line = (helper.read(logs[i]) or ""):match("^(%a+)\n$")
        assert.is_not_nil(outcomes[line], "worker " .. i .. ": " .. tostring(helper.read(logs[i])))
        outcomes[line] = outcomes[line] + 1
      end
      assert.are.same({acquired = 2, timeout = 1}, outcomes)
      -- the two exited without releasing: their counts are gone
      assert.are.equal(0, sem:get_value())
    end)

    it("does not give back the count of a holder that is killed", function()
      local name = fresh("killed")
      local sem = portalock.Semaphore(1, {name = name})
      assert.are.equal(1, sem:get_value()) -- created here, with 1, before the child opens it
      local ready = dir .. "/ready"
      local pid, log = spawn(name, "hold", ready)
      assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10), helper.read(log))
      assert.are.equal(0, sem:get_value())
      helper.kill(pid, "KILL")
      wait_exit(pid)
      assert.are.equal(0, sem:get_value())
      assert.is_false((sem:acquire({timeout = 0.2})))
    end)

    it("never lets more than `value` processes in at once", function()
      local name = fresh("slots")
      local sem = portalock.Semaphore(2, {name = name})
      assert.are.equal(2, sem:get_value())
      local log = dir .. "/slots"
      local pids = {}
      for i = 1, 4 do
        pids[i] = spawn(name, "slots", log, "5")
      end
      for i = 1, 4 do
        wait_exit(pids[i])
      end
      local inside, most, events = 0, 0, 0
      for line in io.lines(log) do
        events = events + 1
        inside = inside + (line == "+" and 1 or -1)
        most = math.max(most, inside)
      end
      assert.are.equal(40, events)
      assert.are.equal(0, inside)
      assert.is_true(most <= 2, "at most 2 inside, saw " .. most)
      assert.are.equal(2, sem:get_value())
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

    local S = portalock.Semaphore
    local cases = {
      {{"bad argument 'value' to 'Semaphore' (-1)", "integer"}, function() S(-1, {name = "x"}) end},
      {{"'value'", "1.5"}, function() S(1.5, {name = "x"}) end},
      {{"'value'", '"2"'}, function() S("2", {name = "x"}) end},
      {{"'value'", "SEM_VALUE_MAX"}, function() S(2 ^ 31, {name = "x"}) end},
      {{"bad argument 'opts' to 'Semaphore'", "table"}, function() S(1, "x") end},
      {{"unknown option", '"nmae"'}, function() S(1, {nmae = "x"}) end},
      {{"bad argument 'name' to 'Semaphore' (\"\")", "empty"}, function() S(1, {name = ""}) end},
      {{"'name'", "'/'"}, function() S(1, {name = "a/b"}) end},
      {{"'name'", '"."'}, function() S(1, {name = "."}) end},
      {{"'name'", '".."'}, function() S(1, {name = ".."}) end},
      {{"'name'", "NUL"}, function() S(1, {name = "a\0b"}) end},
      {{"'name'", "too long"}, function() S(1, {name = string.rep("n", 242)}) end},
      {{"'name'", "string"}, function() S(1, {name = 42}) end},
      {{"'perm'", "0o777"}, function() S(1, {name = "x", perm = 512}) end},
      {{"'perm'", "0o777"}, function() S(1, {name = "x", perm = -1}) end},
      {{"'timeout'", "infinity waits forever"}, function() S(1, {name = "x", timeout = -1}) end},
      {{"'timeout'", "NaN"}, function() S(1, {name = "x", timeout = 0 / 0}) end},
      {{"'check_interval'", ">= 0"}, function() S(1, {name = "x", check_interval = -0.5}) end},
      {{"'check_interval'", "finite"}, function() S(1, {name = "x", check_interval = math.huge}) end},
      {{"bad argument 'name' to 'Semaphore.unlink'", "'/'"}, function() S.unlink("a/b") end},
      {{"'name'", "string"}, function() S.unlink(nil) end},
    }
    for i, case in ipairs(cases) do
      it("raises for constructor case " .. i .. " (" .. case[1][1] .. ")", function()
        raises(case[1], case[2])
      end)
    end

    it("raises for bad acquire and release arguments", function()
      local sem = S(1, {name = fresh("bad")})
      raises({"bad argument 'opts' to 'acquire'", "unknown option", '"blocking"'}, sem.acquire, sem, {blocking = true})
      raises({"'block'", "boolean"}, sem.acquire, sem, {block = 1})
      raises({"'timeout' to 'acquire' (-1)", "infinity waits forever"}, sem.acquire, sem, {timeout = -1})
      raises({"'opts'", "table"}, sem.acquire, sem, 5)
      raises({"bad argument 'n' to 'release' (0)"}, sem.release, sem, 0)
      raises({"'n'", "1.5"}, sem.release, sem, 1.5)
      raises({"'n'"}, sem.release, sem, "1")
      raises({"'n'", "SEM_VALUE_MAX"}, sem.release, sem, 2 ^ 31)
      raises({"'self'", "sem:acquire"}, sem.acquire, {})
      raises({"read-only"}, function() sem.name = "other" end)
      assert.are.equal(1, sem:get_value())
    end)
  end)
end)
