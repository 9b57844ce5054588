local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

describe("bounded semaphores", function()
  local dir, peers

  before_each(function()
    dir = helper.tmpdir()
    peers = {}
  end)

  after_each(function()
    for _, pid in ipairs(peers) do
      helper.kill(pid)
    end
    helper.rmtree(dir)
  end)

  local function sem(maximum, opts)
    opts = opts or {}
    opts.directory = opts.directory or dir
    opts.name = opts.name or "jobs"
    return portalock.NamedBoundedSemaphore(maximum, opts)
  end

  -- A shell prefix that runs a command as another user (nobody) when root; else empty, and the
  -- same user plays the other one.
  local function as_other()
    return helper.run("test \"$(id -u)\" = 0") == 0
      and "setpriv --reuid=nobody --regid=nogroup --clear-groups " or ""
  end

  -- A directory in DIR that everyone may write into, sticky as /tmp is.
  local function sticky_dir()
    local sub = dir .. "/sticky"
    assert.are.equal(0, helper.run("chmod 711 " .. helper.quote(dir) .. " && mkdir -m 1777 "
      .. helper.quote(sub)))
    return sub
  end

  describe("slot names", function()
    it("follows Python's default pattern and directory", function()
      local s = sem(3)
      assert.are.same({dir .. "/jobs.00.lock", dir .. "/jobs.01.lock", dir .. "/jobs.02.lock"}, s:get_filenames())
      local random = s:get_random_filenames()
      table.sort(random)
      assert.are.same(s:get_filenames(), random)
      assert.are.equal("jobs", s.name)
      assert.are.equal(3, s.maximum)
      assert.are.equal(dir, s.directory)
      assert.are.equal("{name}.{number:02d}.lock", s.filename_pattern)
    end)

    it("expands {number}, {number:0Nd} and doubled braces", function()
      local s = sem(12, {filename_pattern = "{{{name}}}.{number}.{number:03d}"})
      assert.are.equal(dir .. "/{jobs}.11.011", s:get_filenames()[12])
    end)

    it("pads {number:0Nd} to any width up to 255, as Python does", function()
      local s = sem(2, {filename_pattern = "{name}.{number:060d}.lock"})
      local names = s:get_filenames()
      assert.are.equal(dir .. "/jobs." .. string.rep("0", 59) .. "1.lock", names[2])
      assert.are.equal(dir .. "/jobs." .. string.rep("0", 60) .. ".lock", names[1])
    end)

    it("generates names from the OS random source; BoundedSemaphore defaults to bounded_semaphore", function()
      local a = portalock.NamedBoundedSemaphore(2, {directory = dir})
      local b = portalock.NamedBoundedSemaphore(2, {directory = dir})
      assert.is_truthy(a.name:match("^bounded_semaphore%.%x+$"))
      assert.are.equal(#"bounded_semaphore." + 16, #a.name)
      assert.are_not.equal(a.name, b.name)
      assert.are.equal("bounded_semaphore", portalock.BoundedSemaphore(2, {directory = dir}).name)
    end)

    it("defaults to the first usable temporary directory", function()
      local expected = os.getenv("TMPDIR") or "/tmp"
      if os.getenv("TMPDIR") == nil and (os.getenv("TEMP") or os.getenv("TMP")) then
        return -- the environment chooses elsewhere
      end
      local s = portalock.BoundedSemaphore(1)
      assert.are.equal(expected:gsub("/+$", ""), s.directory)
      assert.are.equal(s.directory .. "/bounded_semaphore.00.lock", s:get_filenames()[1])
    end)

    it("tries the slots in a random order", function()
      local s = sem(20)
      local seen = {}
      for _ = 1, 40 do
        local slot = assert(s:acquire({timeout = 0}))
        seen[slot.number] = true
        assert(s:release())
      end
      local distinct = 0
      for _ in pairs(seen) do
        distinct = distinct + 1
      end
      assert.is_true(distinct > 8, "only " .. distinct .. " distinct slots")
    end)
  end)

  describe("acquire and release", function()
    it("returns the held slot, and AlreadyLocked once every slot is held", function()
      local a, b, c = sem(2), sem(2), sem(2, {timeout = 0.3, check_interval = 0.05})
      local sa = assert(a:acquire())
      local sb = assert(b:acquire())
      assert.are_not.equal(sa.number, sb.number)
      assert.are.equal(dir .. string.format("/jobs.%02d.lock", sa.number), sa.filename)
      assert.is_true(sa:locked())
      assert.are.equal("number", type(sa:fileno()))
      assert.are.equal(sa, a.lock)
      local t0 = core.monotonic()
      local none, err = c:acquire()
      local waited = core.monotonic() - t0
      assert.is_nil(none)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(err:is(portalock.LockException))
      assert.is_true(waited >= 0.29 and waited < 3, "waited " .. waited)
      -- fail_when_locked is accepted and changes nothing; timeout 0 is one sweep
      t0 = core.monotonic()
      none = c:acquire({timeout = 0, fail_when_locked = true})
      assert.is_nil(none)
      assert.is_true(core.monotonic() - t0 < 0.2)
      assert.is_true(sb:release())
      assert.is_false(sb:locked())
      assert.is_false(b:locked())
      local sc = assert(c:acquire({timeout = 0}))
      assert.are.equal(sb.number, sc.number)
      assert.is_true(sb:release()) -- a stale slot object releases nothing
      assert.is_true(c:locked())
      assert(a:release())
      assert.is_true(a:release()) -- no-op
      assert(c:release())
    end)

    it("waits for a slot another process releases", function()
      local ready = dir .. "/ready"
      local pid = helper.spawn(helper.script_command("bounded_hold", dir, "jobs", "1", ready))
      peers[#peers + 1] = pid
      assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10))
      local s = sem(1)
      assert.is_nil((s:acquire({timeout = 0})))
      helper.kill(pid) -- SIGKILL: the kernel frees the slot
      local slot = assert(s:acquire({timeout = 5, check_interval = 0.02}))
      assert.are.equal(helper.read(ready), slot.filename)
      s:release()
    end)

    it("raises on a second acquire of a semaphore that holds a slot, keeping the slot", function()
      local s = sem(2)
      local slot = assert(s:acquire())
      assert.has_error(function() s:acquire() end)
      local ok, message = pcall(s.acquire, s)
      assert.is_false(ok)
      assert.is_truthy(message:find("already holds slot", 1, true))
      assert.is_true(slot:locked())
      assert(sem(2):acquire({timeout = 0})) -- only one slot was taken
      s:release()
    end)

    it("reports a missing directory at acquire, and works once it exists", function()
      local missing = dir .. "/later"
      local s = sem(2, {directory = missing, timeout = 0})
      assert.is_false(helper.exists(missing))
      local none, err = s:acquire()
      assert.is_nil(none)
      assert.are.equal("LockException", err.kind)
      assert.are.equal(2, err.errno) -- ENOENT
      os.execute("mkdir " .. helper.quote(missing))
      assert(s:acquire())
      s:release()
    end)

    it("works with with() and __close", function()
      local s = sem(1)
      local number = portalock.with(s, function(slot, extra)
        assert.is_true(slot:locked())
        return slot.number + extra
      end, 10)
      assert.are.equal(10, number)
      assert.is_false(s:locked())
      assert.has_error(function() portalock.with(s, function() error("boom") end) end, "boom")
      assert.is_false(s:locked())
      assert(s:acquire())
      getmetatable(s).__close(s)
      assert.is_false(s:locked())
    end)

    it("yields to a scheduler while it waits", function()
      local holder = sem(1)
      assert(holder:acquire())
      local sleeps = 0
      portalock.set_scheduler(function(seconds)
        sleeps = sleeps + 1
        coroutine.yield(seconds)
      end)
      local waiter = sem(1, {timeout = 5, check_interval = 0.01})
      local result
      local co = coroutine.create(function() result = waiter:acquire() end)
      assert(coroutine.resume(co))
      assert.are.equal("suspended", coroutine.status(co))
      holder:release()
      while coroutine.status(co) == "suspended" do
        assert(coroutine.resume(co))
      end
      portalock.set_scheduler(nil)
      assert.is_truthy(result)
      assert.is_true(sleeps >= 1)
      waiter:release()
    end)
  end)

  describe("a slot file that cannot be used", function()
    -- Another user plants a file at slot 0 of 2 with `what` (a shell command taking the path).
    local function plant(what)
      local sub = sticky_dir()
      assert.are.equal(0, helper.run(as_other() .. what .. " " .. helper.quote(sub .. "/jobs.00.lock")))
      return sub
    end

    for _, case in ipairs({{"a symlink", "ln -s /etc/passwd"}, {"a FIFO", "mkfifo"}}) do
      it("is skipped when it is " .. case[1] .. ": every acquire gets the other slot", function()
        local s = sem(2, {directory = plant(case[2])})
        for _ = 1, 20 do
          local slot, err = s:acquire({timeout = 0})
          assert.is_truthy(slot, err and tostring(err))
          assert.are.equal(1, slot.number)
          assert(slot:release())
        end
      end)
    end

    it("still lets the acquire wait for the usable slots", function()
      local sub = plant("ln -s /etc/passwd")
      local s, holder = sem(2, {directory = sub}), sem(2, {directory = sub})
      local held = assert(holder:acquire({timeout = 0}))
      local none, err = s:acquire({timeout = 0.2, check_interval = 0.05})
      assert.is_nil(none)
      assert.are.equal("AlreadyLocked", err.kind)
      assert(held:release())
      assert.are.equal(1, assert(s:acquire({timeout = 0})).number)
    end)

    it("fails at once with a LockException naming one when no slot file can be used", function()
      local sub = plant("ln -s /etc/passwd")
      assert.are.equal(0, helper.run(as_other() .. "ln -s /etc/passwd " .. helper.quote(sub .. "/jobs.01.lock")))
      local t0 = core.monotonic()
      local none, err = sem(2, {directory = sub}):acquire({timeout = 5})
      assert.is_nil(none)
      assert.is_true(core.monotonic() - t0 < 1)
      assert.are.equal("LockException", err.kind)
      assert.are.equal(40, err.errno) -- ELOOP
      assert.is_truthy(err.message:find("none of its 2 slot files can be used", 1, true), err.message)
      local named = err.message:find("'" .. sub .. "/jobs.00.lock'", 1, true)
        or err.message:find("'" .. sub .. "/jobs.01.lock'", 1, true)
      assert.is_truthy(named, err.message)
    end)

    it("is skipped by portalock run -j 2", function()
      local cli = require "spec.support.cli"
      local session = cli.session(dir)
      local sub = sticky_dir()
      assert.are.equal(0, helper.run(as_other() .. "ln -s /etc/passwd "
        .. helper.quote(sub .. "/bounded_semaphore.00.lock")))
      for _ = 1, 10 do
        local code, stdout, stderr = session:run({"run", "--dir", sub, "-j", "2", "true"})
        assert.are.equal(0, code, cli.describe(code, stdout, stderr))
      end
      session:cleanup()
    end)
  end)

  describe("bad inputs", function()
    for _, class in ipairs({"NamedBoundedSemaphore", "BoundedSemaphore"}) do
      local new = portalock[class]
      local function raises(pattern, ...)
        local args = {...}
        local ok, message = pcall(function() return new(args[1], args[2]) end)
        assert.is_false(ok, "no error for " .. pattern)
        assert.is_truthy(tostring(message):find(pattern, 1, true), tostring(message))
      end

      it(class .. " refuses bad arguments, naming them", function()
        raises("'maximum'", 0)
        raises("'maximum'", 10001)
        raises("'maximum'", 1.5)
        raises("'maximum'", "3")
        raises("'maximum'", nil)
        raises("'opts'", 1, "x")
        raises("unknown option", 1, {nmae = "x"})
        raises("'name'", 2, {name = "a/b"})
        raises("'name'", 2, {name = "."})
        raises("'name'", 2, {name = ".."})
        raises("'name'", 2, {name = "a\0b"})
        raises("'name'", 2, {name = 5})
        raises("'filename_pattern'", 2, {name = string.rep("x", 250)})
        raises("'filename_pattern'", 2, {filename_pattern = "{name}/{number}"})
        raises("'filename_pattern'", 2, {filename_pattern = "{name}.{number:2d}"})
        raises("'filename_pattern'", 2, {filename_pattern = "{nam}.{number}"})
        raises("'filename_pattern'", 2, {filename_pattern = "{name}.lock"})
        raises("'filename_pattern'", 2, {filename_pattern = "{name}.{number"})
        raises("'filename_pattern'", 1, {filename_pattern = "{name}", name = ""})
        raises("'filename_pattern'", 2, {filename_pattern = ""})
        raises("'directory'", 2, {directory = ""})
        raises("'directory'", 2, {directory = "a\0b"})
        raises("'timeout'", 2, {timeout = -1})
        raises("'timeout'", 2, {timeout = 0 / 0})
        raises("'check_interval'", 2, {check_interval = -1})
        raises("'check_interval'", 2, {check_interval = math.huge})
        raises("'fail_when_locked'", 2, {fail_when_locked = "yes"})
      end)
    end

    it("acquire refuses bad options", function()
      local s = sem(1)
      assert.has_error(function() s:acquire({timeout = -1}) end)
      assert.has_error(function() s:acquire({bogus = 1}) end)
      assert.has_error(function() s.acquire({}) end)
    end)
  end)

  describe("across processes", function()
    it("8 processes x 50 jobs through a semaphore of 3 overlap at most 3, and use all 3", function()
      local pids = {}
      for i = 1, 8 do
        pids[i] = helper.spawn(helper.script_command("bounded_worker", dir, "overlap", "3", "50",
          dir .. "/log." .. i), dir .. "/err." .. i)
      end
      local function done()
        for i = 1, 8 do
          if helper.alive(pids[i]) then
            return false
          end
        end
        return true
      end
      assert.is_true(helper.wait_until(done, 20), "workers did not finish")
      local events = {}
      for i = 1, 8 do
        local log = helper.read(dir .. "/log." .. i)
        assert.is_truthy(log, "worker " .. i .. " wrote no log: " .. tostring(helper.read(dir .. "/err." .. i)))
        local count = 0
        for kind, t in log:gmatch("([EX]) (%S+)") do
          events[#events + 1] = {t = tonumber(t), d = kind == "E" and 1 or -1}
          count = count + 1
        end
        assert.are.equal(100, count)
      end
      -- At equal times count the exit first: it happened before the other's enter.
      table.sort(events, function(a, b)
        if a.t ~= b.t then
          return a.t < b.t
        end
        return a.d < b.d
      end)
      local current, highest = 0, 0
      for _, e in ipairs(events) do
        current = current + e.d
        highest = math.max(highest, current)
      end
      assert.are.equal(0, current)
      assert.are.equal(3, highest)
    end)

    describe("a waiter in its own process", function()
      -- Waits for a slot of "w" in DIR; prints how the wait ended, and the polled waits.
      -- With READY, creates that file once the wait has given up its descriptors to poll (the
      -- wait returns to Lua every check_interval, where a count hook looks).
      local WAITER = [[
local portalock = require "portalock"
local dir, maximum, ready = ...
local s = portalock.NamedBoundedSemaphore(tonumber(maximum), {name = "w", directory = dir})
if ready then
  if rawget(_G, "jit") then jit.off() end -- compiled code runs no count hook
  debug.sethook(function()
    if require("portalock.wait").counters().unwatched > 0 then
      debug.sethook()
      io.open(ready, "w"):close()
    end
  end, "", 100)
end
local slot, err = s:acquire({timeout = 10, check_interval = 0.05})
if slot then
  print("acquired, unwatched " .. require("portalock.wait").counters().unwatched)
else
  print(string.format("%s errno %s: %s", err.kind, tostring(err.errno), err.message))
end
]]

      -- Starts WAITER (under the shell `prefix`) once `maximum` slots in `sub` are held, and
      -- lets it get into its wait: until it keeps `kept` open (a wait keeps its slot files
      -- open), or, without `kept`, until it has turned to polling. Returns a function that
      -- waits for it to end and returns what it printed.
      local function start_waiter(sub, maximum, kept, prefix)
        local log, ready = dir .. "/waiter.log", dir .. "/waiter.polling"
        local command = kept and helper.lua_command(WAITER, sub, maximum)
          or helper.lua_command(WAITER, sub, maximum, ready)
        local pid = helper.spawn((prefix or "") .. command, log)
        peers[#peers + 1] = pid
        assert.is_true(helper.wait_until(function()
          if kept then
            return helper.capture("ls -l /proc/" .. pid .. "/fd 2>/dev/null"):find(kept, 1, true) ~= nil
          end
          return helper.exists(ready)
        end, 10), "the waiter never got into its wait: " .. tostring(helper.read(log)))
        return function()
          assert.is_true(helper.wait_until(function() return not helper.alive(pid) end, 15))
          return helper.read(log)
        end
      end

      local function hold_one(sub)
        local ready = dir .. "/ready"
        peers[#peers + 1] = helper.spawn(helper.script_command("bounded_hold", sub, "w", "1", ready))
        assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10))
      end

      it("ends with a LockException when the slot directory is removed during the wait", function()
        local sub = dir .. "/slots"
        assert.are.equal(0, helper.run("mkdir " .. helper.quote(sub)))
        hold_one(sub)
        local finish = start_waiter(sub, 1, sub .. "/w.00.lock")
        -- Out of the path at once (rm -rf could race the waiter re-creating the slot file).
        assert.are.equal(0, helper.run("mv " .. helper.quote(sub) .. " " .. helper.quote(dir .. "/gone")
          .. " && rm -rf " .. helper.quote(dir .. "/gone")))
        local output = finish()
        assert.are.equal("LockException errno 2: open '" .. sub .. "/w.00.lock': "
          .. "No such file or directory: the directory '" .. sub .. "' does not exist\n", output)
      end)

      it("ends with a LockException when another user renames a symlink over the slot file", function()
        -- The slot file is the other user's, in a sticky directory as /tmp is: they may replace
        -- it.
        local sub = sticky_dir()
        assert.are.equal(0, helper.run(as_other() .. "touch " .. helper.quote(sub .. "/w.00.lock")))
        hold_one(sub)
        local finish = start_waiter(sub, 1, sub .. "/w.00.lock")
        assert.are.equal(0, helper.run(as_other() .. "sh -c " .. helper.quote("ln -s /etc/passwd "
          .. helper.quote(sub .. "/link") .. " && mv -T " .. helper.quote(sub .. "/link") .. " "
          .. helper.quote(sub .. "/w.00.lock"))))
        local output = finish()
        assert.are.equal("LockException errno 40: bounded semaphore 'w': none of its 1 slot files "
          .. "can be used (open '" .. sub .. "/w.00.lock': Too many levels of symbolic links)\n", output)
      end)

      it("polls when it runs out of descriptors for the slot files (ulimit -n 40, 60 held slots)", function()
        local ready = dir .. "/ready"
        local holder = helper.spawn(helper.lua_command([[
local portalock = require "portalock"
local dir, ready = ...
local held = {}
for i = 1, 60 do
  held[i] = portalock.NamedBoundedSemaphore(60, {name = "w", directory = dir})
  assert(held[i]:acquire({timeout = 0}))
end
io.open(ready, "w"):close()
require("portalock.core").wait(nil, math.huge, math.huge)
]], dir, ready))
        peers[#peers + 1] = holder
        assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10))
        local finish = start_waiter(dir, 60, nil, "ulimit -n 40 && ")
        helper.kill(holder)
        local output = finish()
        assert.is_truthy(output:match("^acquired, unwatched [1-9]"), output)
      end)
    end)

    describe("with Python's portalocker", function()
      local PYTHON_HOLD = [[
import portalocker, sys, time
sems = [portalocker.BoundedSemaphore(2, name=sys.argv[1], directory=sys.argv[2]) for _ in range(2)]
held = [str(s.acquire().filename) for s in sems]
open(sys.argv[3], "w").write("\n".join(held))
time.sleep(30)
]]
      local PYTHON_TRY = [[
import portalocker, sys
s = portalocker.BoundedSemaphore(2, name=sys.argv[1], directory=sys.argv[2], timeout=0.2,
                                 check_interval=0.05)
print("FILES " + " ".join(str(f) for f in s.get_filenames()))
try:
    lock = s.acquire()
except portalocker.AlreadyLocked:
    sys.exit(1)
print("HELD " + str(lock.filename))
sys.exit(0)
]]
      local function python(code, ...)
        local parts = {helper.peer_env .. helper.python, "-c", helper.quote(code)}
        for i = 1, select("#", ...) do
          parts[#parts + 1] = helper.quote((select(i, ...)))
        end
        return table.concat(parts, " ")
      end

      it("sees the slots Python holds", function()
        local ready = dir .. "/py.ready"
        peers[#peers + 1] = helper.spawn(python(PYTHON_HOLD, "shared", dir, ready))
        assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 10))
        local held = {}
        for path in helper.read(ready):gmatch("[^\n]+") do
          held[#held + 1] = path
        end
        table.sort(held)
        local s = sem(2, {name = "shared"})
        assert.are.same(s:get_filenames(), held) -- byte-for-byte the same names
        local none, err = s:acquire({timeout = 0.2})
        assert.is_nil(none)
        assert.are.equal("AlreadyLocked", err.kind)
      end)

      it("makes Python wait for the slots we hold", function()
        local a, b = sem(2, {name = "shared"}), sem(2, {name = "shared"})
        assert(a:acquire())
        local kept = assert(b:acquire())
        local output, code = helper.capture(python(PYTHON_TRY, "shared", dir))
        assert.are.equal(1, code, output)
        assert.are.equal("FILES " .. table.concat(a:get_filenames(), " "), output:match("FILES [^\n]*"))
        a:release()
        output, code = helper.capture(python(PYTHON_TRY, "shared", dir))
        assert.are.equal(0, code, output)
        local path = output:match("HELD ([^\n]*)")
        assert.are_not.equal(kept.filename, path)
        assert.is_truthy(path == a:get_filenames()[1] or path == a:get_filenames()[2], path)
        b:release()
      end)
    end)
  end)
end)
