--- A seeded random driver of the whole public `portalock` API (ctest's fuzz.api.* tests and
-- tools/fuzz run it; README "Fuzzing").
--
--   lua spec/support/api_fuzz.lua [--seed N] [--iterations N]
--   lua spec/support/api_fuzz.lua --replay spec/support/api_fuzz_seeds.txt
--
-- Run from the repository root with LUA_PATH/LUA_CPATH as ctest sets them (the test helper
-- module portalock_testhelper is needed for fork() and descriptor counts).
--
-- Each iteration does one random thing: makes an object of a random class with random
-- options, or calls a random method of a random object (acquired, released, closed through
-- its handle, closed with __close, used after fork() in a child), or misuses a call with a
-- wrong argument (wrong types, NaN, huge numbers, odd strings, nested tables, unknown
-- options). Part of the iterations run inside coroutines that a small scheduler
-- (portalock.set_scheduler) interleaves at random while they wait for the same objects; on
-- Lua 5.4 some of them are closed with coroutine.close in the middle of an acquire.
--
-- It checks: every misuse raises a string error that says "bad argument" and names the
-- argument; every other call returns what CONTRACT.md "Errors and return values" says (a
-- handle, true/false, or nil plus an error object of a documented kind); after everything
-- is released and collected no descriptor is left open. A crash, an abort or a hang ends
-- the process (the test's timeout catches a hang).
--
-- The seed is printed first. The random numbers come from a generator of its own, not
-- math.random: a seed reruns the same calls on every interpreter (coroutines that wait for
-- each other may still interleave differently, as their waits depend on time).
local portalock = require "portalock"
local testhelper = require "portalock_testhelper"

-- ---------------------------------------------------------------- arguments, randomness

local RUNTIME = jit and "luajit" or _VERSION:match("%d+%.%d+")

-- --replay FILE: reruns each "<runtime> <seed> <iterations>" line of FILE for this runtime
-- (the runs that once found a defect), each in a process of its own.
local function replay(file)
  local failed = 0
  for line in io.lines(file) do
    local runtime, seed, iterations = line:match("^(%w[%w.]*)%s+(%d+)%s+(%d+)")
    if runtime == RUNTIME then
      local ok = os.execute(string.format("%s %s --seed %s --iterations %s", arg[-1], arg[0], seed,
        iterations))
      if ok ~= true and ok ~= 0 then
        failed = failed + 1
      end
    end
  end
  os.exit(failed == 0 and 0 or 1)
end

local seed, iterations = nil, 500
do
  local i = 1
  while arg[i] do
    if arg[i] == "--seed" then
      seed = tonumber(arg[i + 1])
    elseif arg[i] == "--iterations" then
      iterations = tonumber(arg[i + 1])
    elseif arg[i] == "--replay" then
      replay(arg[i + 1])
    else
      io.stderr:write("usage: api_fuzz.lua [--seed N] [--iterations N] | --replay FILE\n")
      os.exit(64)
    end
    i = i + 2
  end
end
seed = seed or (os.time() + testhelper.getpid()) % 2147483646 + 1
print(string.format("api_fuzz: seed %d, %d iterations on %s (rerun: --seed %d)", seed, iterations,
  jit and jit.version or _VERSION, seed))

-- Park and Miller's minimal standard generator (exact in doubles on every Lua), one stream
-- per coroutine and one for the scheduler: what each coroutine calls does not depend on how
-- often the others were resumed (which depends on time, as their waits do).
local MAIN, SCHEDULER = {}, {}
local streams = setmetatable({[MAIN] = seed % 2147483646 + 1}, {__mode = "k"})

local function rand(n, stream)
  if not stream then
    local co, is_main = coroutine.running()
    stream = (co == nil or is_main) and MAIN or co
  end
  local state = streams[stream] * 48271 % 2147483647
  streams[stream] = state
  return state % n + 1
end
local function chance(percent)
  return rand(100) <= percent
end
local function pick(list)
  return list[rand(#list)]
end

-- ---------------------------------------------------------------- failing

local step, trail = 0, {}
local tally = {} -- what happened how often, printed at the end

local function count(what)
  tally[what] = (tally[what] or 0) + 1
end

local function note(what)
  local co, is_main = coroutine.running()
  trail[#trail + 1] = string.format("%d: %s%s", step, (co and not is_main) and "[coroutine] " or "", what)
  if #trail > 30 then
    table.remove(trail, 1)
  end
end

local function fail(why)
  io.stderr:write(string.format("api_fuzz: FAILED at step %d (seed %d): %s\nlast calls:\n  %s\n",
    step, seed, why, table.concat(trail, "\n  ")))
  os.exit(1)
end

local function describe(value, depth)
  if type(value) == "string" then
    return string.format("%q", #value > 200 and value:sub(1, 200) .. "..." or value)
  elseif type(value) == "table" and (depth or 0) < 2 then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = "[" .. describe(k, (depth or 0) + 1) .. "] = " .. describe(v, (depth or 0) + 1)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(value)
end

-- ---------------------------------------------------------------- the world

local dir
do
  local pipe = assert(io.popen("mktemp -d /tmp/portalock-api-fuzz.XXXXXX"))
  dir = pipe:read("*l")
  pipe:close()
end
-- Semaphore names are global to the machine: these belong to this run only.
local sem_prefix = "apifuzz-" .. dir:match("[^.]+$")
local sem_names = {sem_prefix .. "-1", sem_prefix .. "-2"}
local descriptors_before = testhelper.fd_count()

local function path()
  return pick({dir .. "/a.lock", dir .. "/a.lock", dir .. "/b.lock", dir .. "/b.lock", dir .. "/c.lock",
    dir .. "/app.pid", dir .. "/missing/x.lock", dir})
end

local function small_time()
  return pick({0, 0, 0.001, 0.01, 0.03})
end

local objects = {} -- {class = ..., obj = ..., handle = <Lock handle or slot or nil>}

-- ---------------------------------------------------------------- result conventions

local KINDS = {AlreadyLocked = true, LockException = true}

local function check_error(what, err)
  count(type(err) == "table" and tostring(err.kind) or "?")
  if type(err) ~= "table" or not KINDS[err.kind] or type(err.message) ~= "string"
      or not err:is(portalock.LockException) or type(tostring(err)) ~= "string" then
    fail(what .. " returned nil and not an error object of a documented kind: " .. describe(err)
      .. (type(err) == "table" and " kind " .. describe(err.kind) or ""))
  end
end

-- `ok, ...` of a pcall of a valid call: it must not raise (except with an error object).
local function returned(what, ok, ...)
  if not ok then
    local err = ...
    fail(what .. " raised: " .. describe(type(err) == "table" and tostring(err) or err))
  end
  return ...
end

-- A Lock-family or bounded acquire: a handle, or nil, err.
local function check_handle_result(what, expect, value, err)
  if value == nil then
    check_error(what, err)
    return nil
  end
  count("acquired")
  if expect == "file" and io.type(value) ~= "file" then
    fail(what .. " returned " .. describe(value) .. ", not an open io handle")
  elseif expect == "slot" and (type(value) ~= "table" or type(value.filename) ~= "string") then
    fail(what .. " returned " .. describe(value) .. ", not a slot Lock")
  end
  return value
end

-- A counting Semaphore's or Lockable's acquire: true, false, or nil, err.
local function check_boolean_result(what, value, err)
  if value == nil then
    check_error(what, err)
  elseif type(value) ~= "boolean" then
    fail(what .. " returned " .. describe(value) .. ", not a boolean")
  else
    count(value and "acquired" or "not acquired")
  end
end

-- release, unlock, commit: true, or nil, err.
local function check_true_result(what, value, err)
  if value == nil then
    check_error(what, err)
  elseif value ~= true then
    fail(what .. " returned " .. describe(value) .. ", not true")
  end
end

-- ---------------------------------------------------------------- misuse

-- Wrong for any argument that wants a function, a lock object or a count.
local JUNK = {true, 0 / 0, math.huge, -math.huge, -1, 1e308, 2 ^ 53, "", "x\0y", ("a"):rep(5000),
  {}, {{}}, {[{}] = 1}, coroutine.create(print), io.stdout}

-- `fn(...)` must raise a string naming its argument: "bad argument 'name' to 'function'", or
-- for the rules the C core owns (bounded-semaphore names and patterns) "Class: bad option
-- 'name'". Never with a position inside portalock ("lock.lua:249:") in front.
local function misuse(what, fn, ...)
  note("misuse " .. what)
  count("misuse")
  local ok, message = pcall(fn, ...)
  if ok then
    fail("misuse accepted: " .. what)
  elseif type(message) ~= "string" or not (message:find("bad argument '", 1, true)
      or message:find("^%a+: bad option '")) or message:find("^[^ ]*%.lua:%d+:") then
    fail("misuse " .. what .. " raised " .. describe(type(message) == "table" and tostring(message)
      or message) .. ": not a message naming the argument")
  end
end

-- Values that are wrong for each option, whatever else the table holds.
local BAD_OPTIONS = {
  timeout = {-1, 0 / 0, "1", {}, true, -math.huge},
  check_interval = {-1, 0 / 0, "x", {}, -math.huge, math.huge},
  fail_when_locked = {"yes", 1, {}},
  mode = {"x", "", "rw", 5, {}, "a\0"},
  flags = {3, 16, 8, 0, 2 ^ 40, 0 / 0, 1.5, "2"},
  backend = {"lockf", 1, {}},
  perm = {-1, 4096, 1e300, 0 / 0, 1.5, "644"},
}

local function bad_lock_options()
  local key = pick({"timeout", "check_interval", "fail_when_locked", "mode", "flags", "backend", "perm"})
  local opts = {[key] = pick(BAD_OPTIONS[key])}
  return opts, key
end

local function misuse_something()
  local kind = rand(12)
  if kind == 1 then
    local opts, key = bad_lock_options()
    local class = pick({"Lock", "RLock"})
    misuse(class .. " option " .. key .. " = " .. describe(opts[key]), portalock[class], path(), opts)
  elseif kind == 2 then
    misuse("Lock filename", portalock.Lock, pick({42, "", "a\0b", {}, true}))
  elseif kind == 3 then
    misuse("Lock opts", portalock.Lock, path(), pick({"x", 5, true, {tiemout = 1}, {[1] = 2}}))
  elseif kind == 4 then
    misuse("NamedBoundedSemaphore maximum", portalock.NamedBoundedSemaphore,
      pick({0, 10001, 0 / 0, 1.5, "2", {}, -1, math.huge}), {directory = dir})
  elseif kind == 5 then
    local opts = pick({{name = "a/b"}, {name = ".."}, {name = "a\0b"}, {name = 5},
      {filename_pattern = "{x}"}, {filename_pattern = "none"}, {filename_pattern = "{"},
      {directory = 5}, {directory = "a\0b"}, {timeout = -1}, {check_interval = math.huge}, {unknown = 1}})
    misuse("NamedBoundedSemaphore opts", portalock.NamedBoundedSemaphore, 2, opts)
  elseif kind == 6 then
    misuse("Semaphore value", portalock.Semaphore, pick({-1, 0 / 0, 2 ^ 31, "1", 1.5, {}}),
      {name = sem_names[1]})
  elseif kind == 7 then
    misuse("Semaphore opts", portalock.Semaphore, 1, pick({{name = "a/b"}, {name = ""},
      {name = 5}, {perm = 4096}, {perm = -1}, {timeout = -1}, {check_interval = math.huge}, {unknown = 1}}))
  elseif kind == 8 then
    misuse("lock flags", portalock.lock, io.stdout, pick({16, 8, 3, 0 / 0, "2"}))
  elseif kind == 9 then
    misuse("lock file", pick({portalock.lock, portalock.unlock}), pick({"x", -1, {}, 1.5}), 2)
  elseif kind == 10 then
    misuse("read_pid", portalock.read_pid, pick({5, {}, "", "a\0b"}))
  elseif kind == 11 then
    misuse("open_atomic", portalock.open_atomic, pick({5, "", {}, "a\0b"}))
  elseif chance(50) then
    misuse("with", portalock.with, pick(JUNK), function() end)
  else
    misuse("set_scheduler", portalock.set_scheduler, pick(JUNK))
  end
end

-- A method of an object called with a bad argument.
local function misuse_method(entry)
  local obj, class = entry.obj, entry.class
  if class == "Semaphore" then
    misuse("Semaphore release n", obj.release, obj, chance(50) and pick({0, 1.5, "1"}) or pick(JUNK))
  elseif class == "atomic" then
    misuse("atomic write", obj.write, obj, pick({{}, true, print}))
  elseif class == "Lockable" then
    misuse("Lockable acquire opts", obj.acquire, obj, pick({{timeout = -1}, {blocking = "no"}, 5}))
  else
    local opts, key = bad_lock_options()
    if key == "mode" or key == "flags" or key == "backend" or key == "perm" then
      opts = pick({5, "x", {unknown = true}}) -- not options of acquire
    end
    misuse(class .. ":acquire " .. describe(opts), obj.acquire, obj, opts)
  end
end

-- ---------------------------------------------------------------- making objects

local function lock_options(class)
  local opts = {timeout = small_time(), check_interval = pick({0.001, 0.005, 0.25})}
  if chance(50) then
    opts.fail_when_locked = chance(50)
  end
  if class == "Lock" or class == "RLock" then
    local shared = chance(30)
    opts.flags = (shared and portalock.LOCK_SH or portalock.LOCK_EX) + (chance(50) and portalock.LOCK_NB or 0)
    opts.mode = shared and pick({"a", "r", "r+", "a+"}) or pick({"a", "a+", "w", "r+", "w+"})
    if chance(15) then
      opts.backend = shared and pick({"ofd", "posix"}) or "ofd"
      opts.mode = "r+"
    end
  end
  if chance(20) then
    opts.perm = pick({tonumber("644", 8), tonumber("600", 8)})
  end
  return opts
end

local function make_object()
  local class = pick({"Lock", "Lock", "RLock", "TemporaryFileLock", "PidFileLock",
    "NamedBoundedSemaphore", "BoundedSemaphore", "Semaphore", "Lockable", "atomic"})
  note("new " .. class)
  local obj
  if class == "NamedBoundedSemaphore" or class == "BoundedSemaphore" then
    local opts = {directory = pick({dir, dir, dir .. "/missing"}), timeout = small_time(),
      check_interval = pick({0.001, 0.01})}
    if class == "NamedBoundedSemaphore" then
      opts.name = pick({"s1", "s2", nil})
    end
    if chance(30) then
      opts.filename_pattern = pick({"{name}-{number}", "{{{name}}}.{number:03d}"})
    end
    obj = returned(class, pcall(portalock[class], rand(3), opts))
  elseif class == "Semaphore" then
    obj = returned(class, pcall(portalock.Semaphore, rand(3) - 1, {name = pick(sem_names),
      timeout = small_time(), check_interval = 0.005}))
  elseif class == "Lockable" then
    obj = returned(class, pcall(portalock.Lockable.init, {}, {filename = dir .. "/lockable.lock",
      timeout = small_time(), check_interval = 0.005}))
  elseif class == "atomic" then
    local value, err = returned(class, pcall(portalock.open_atomic, pick({dir .. "/out.txt",
      dir .. "/missing/out.txt"}), {replace = chance(70)}))
    if value == nil then
      check_error("open_atomic", err)
      return
    end
    obj = value
  else
    obj = returned(class, pcall(portalock[class], path(), lock_options(class)))
  end
  if type(tostring(obj)) ~= "string" then
    fail(class .. ": tostring")
  end
  objects[#objects + 1] = {class = class, obj = obj}
  if #objects > 10 then
    local old = table.remove(objects, 1)
    if old.class ~= "atomic" and old.class ~= "Lockable" and old.class ~= "Semaphore" then
      pcall(old.obj.release, old.obj)
    end
  end
end

-- ---------------------------------------------------------------- using objects

local function acquire_options()
  local opts = {timeout = small_time()}
  if chance(30) then
    opts.fail_when_locked = chance(50)
  end
  if chance(30) then
    opts.check_interval = pick({0.001, 0.01})
  end
  return opts
end

local function use_lock(entry)
  local obj, class = entry.obj, entry.class
  local what = class .. " '" .. tostring(obj.filename) .. "'"
  local action = rand(7)
  if action <= 2 then
    note(what .. ":acquire")
    local value, err = returned(what .. ":acquire", pcall(obj.acquire, obj, acquire_options()))
    entry.handle = check_handle_result(what .. ":acquire", "file", value, err) or entry.handle
  elseif action == 3 then
    note(what .. ":release")
    local ok, value, err = pcall(obj.release, obj)
    if not ok and class == "RLock" then
      if type(value) ~= "string" or not value:find("cannot release RLock", 1, true) then
        fail(what .. ":release raised " .. describe(value))
      end
    else
      check_true_result(what .. ":release", returned(what .. ":release", ok, value, err))
    end
  elseif action == 4 then
    note(what .. ": close its handle")
    if io.type(entry.handle) == "file" then
      entry.handle:close()
    end
    if class ~= "RLock" and obj:locked() and io.type(entry.handle) == "closed file" then
      fail(what .. ": still locked after its handle was closed")
    end
  elseif action == 5 then
    note(what .. ": __close")
    returned(what .. ":__close", pcall(getmetatable(obj).__close, obj))
  elseif action == 6 then
    note(what .. ": with")
    local sentinel, raise = {}, chance(50)
    local ok, err = pcall(portalock.with, obj, function(handle)
      if raise then
        error(sentinel)
      end
      return handle
    end)
    if not ok and err ~= sentinel and not (type(err) == "table" and KINDS[err.kind]) then
      fail(what .. ": with raised " .. describe(err))
    end
  else
    note(what .. ": fields")
    local locked = obj:locked()
    if type(locked) ~= "boolean" or type(obj.filename) ~= "string" then
      fail(what .. ": locked() or its fields")
    end
  end
end

local function use_bounded(entry)
  local obj = entry.obj
  local what = entry.class .. " '" .. obj.name .. "'"
  local action = rand(5)
  if action <= 2 then
    note(what .. ":acquire")
    local ok, value, err = pcall(obj.acquire, obj, acquire_options())
    if not ok then
      if type(value) ~= "string" or not value:find("already holds slot", 1, true) then
        fail(what .. ":acquire raised " .. describe(value))
      end
    else
      entry.handle = check_handle_result(what .. ":acquire", "slot", value, err) or entry.handle
    end
  elseif action == 3 then
    note(what .. ":release")
    check_true_result(what .. ":release", returned(what .. ":release", pcall(obj.release, obj)))
  elseif action == 4 then
    note(what .. ":get_filenames")
    local files, err = returned(what, pcall(chance(50) and obj.get_filenames or obj.get_random_filenames, obj))
    if files == nil then
      check_error(what .. ":get_filenames", err)
    elseif #files ~= obj.maximum then
      fail(what .. ": " .. #files .. " file names for maximum " .. obj.maximum)
    end
  else
    note(what .. ": __close")
    returned(what .. ":__close", pcall(getmetatable(obj).__close, obj))
  end
end

local function use_semaphore(entry)
  local obj = entry.obj
  local what = "Semaphore '" .. obj.name .. "'"
  local action = rand(5)
  if action <= 2 then
    note(what .. ":acquire")
    local opts = pick({{block = false}, {timeout = small_time()}, {block = true, timeout = 0.01}})
    check_boolean_result(what .. ":acquire", returned(what .. ":acquire", pcall(obj.acquire, obj, opts)))
  elseif action == 3 then
    note(what .. ":release")
    check_true_result(what .. ":release", returned(what .. ":release", pcall(obj.release, obj)))
  elseif action == 4 then
    note(what .. ":get_value")
    local value, err = returned(what, pcall(obj.get_value, obj))
    if value == nil then
      check_error(what .. ":get_value", err)
    elseif type(value) ~= "number" or value < 0 then
      fail(what .. ":get_value returned " .. describe(value))
    end
  else
    note(what .. ": __close")
    returned(what .. ":__close", pcall(getmetatable(obj).__close, obj))
  end
end

local function use_lockable(entry)
  local obj = entry.obj
  local action = rand(3)
  if action == 1 then
    note("Lockable:acquire")
    check_boolean_result("Lockable:acquire", returned("Lockable:acquire",
      pcall(obj.acquire, obj, {timeout = small_time()})))
  elseif action == 2 then
    note("Lockable:release")
    local ok, err = pcall(obj.release, obj)
    if not ok and (type(err) ~= "string" or not err:find("cannot release", 1, true)) then
      fail("Lockable:release raised " .. describe(err))
    end
  else
    note("Lockable: __close")
    returned("Lockable:__close", pcall(getmetatable(obj).__close, obj))
  end
end

local function use_atomic(entry)
  local h = entry.obj
  local action = rand(5)
  if action <= 2 then
    note("atomic:write")
    local ok, value, err = pcall(h.write, h, pick({"text", 42, ("x"):rep(10000), ""}))
    if not ok then
      if type(value) ~= "string" then
        fail("atomic:write raised " .. describe(value))
      end
    elseif value == nil then
      check_error("atomic:write", err)
    end
  elseif action == 3 then
    note("atomic:commit")
    local ok, value, err = pcall(h.commit, h)
    if ok then
      check_true_result("atomic:commit", value, err)
    elseif type(value) ~= "string" then
      fail("atomic:commit raised " .. describe(value))
    end
  elseif action == 4 then
    note("atomic:abort")
    returned("atomic:abort", pcall(h.abort, h))
  else
    note("atomic: __close")
    returned("atomic:__close", pcall(getmetatable(h).__close, h))
  end
end

local USE = {
  Lock = use_lock, RLock = use_lock, TemporaryFileLock = use_lock, PidFileLock = use_lock,
  NamedBoundedSemaphore = use_bounded, BoundedSemaphore = use_bounded,
  Semaphore = use_semaphore, Lockable = use_lockable, atomic = use_atomic,
}

-- A forked child holds nothing its parent held, and its release never touches the parent's.
local function fork_and_check()
  note("fork")
  count("fork")
  io.stdout:flush()
  local pid = testhelper.fork()
  if pid == 0 then
    local status = 0
    for _, entry in ipairs(objects) do
      local obj = entry.obj
      if entry.class ~= "atomic" and entry.class ~= "Lockable" and entry.class ~= "Semaphore" then
        if obj:locked() then
          io.stderr:write("api_fuzz: a forked child reports " .. tostring(obj) .. " held\n")
          status = 1
        end
        pcall(obj.release, obj)
      end
    end
    testhelper._exit(status)
  end
  local code = testhelper.waitpid(pid)
  if code ~= 0 then
    fail("the forked child found a problem (exit " .. tostring(code) .. ")")
  end
end

local function one_step()
  step = step + 1
  local r = rand(100)
  if r <= 12 or #objects == 0 then
    make_object()
  elseif r <= 22 then
    misuse_something()
  elseif r <= 27 then
    misuse_method(pick(objects))
  elseif r <= 28 then
    fork_and_check()
  else
    local entry = pick(objects)
    USE[entry.class](entry)
  end
end

-- ---------------------------------------------------------------- coroutines

-- Runs `count` coroutines of a few steps each, resumed in a random order; their waits yield
-- to this loop through the scheduler. On 5.4 some are closed while suspended.
local function interleave(tasks_count)
  note("interleave " .. tasks_count)
  portalock.set_scheduler(function()
    coroutine.yield("sleep")
  end)
  streams[SCHEDULER] = rand(2147483646)
  local tasks = {}
  for i = 1, tasks_count do
    local steps = rand(5)
    tasks[i] = coroutine.create(function()
      for _ = 1, steps do
        one_step()
      end
    end)
    streams[tasks[i]] = rand(2147483646)
  end
  local rounds = 0
  while #tasks > 0 do
    rounds = rounds + 1
    local i = rand(#tasks, SCHEDULER)
    local co = tasks[i]
    if coroutine.close and rounds > 3 and rand(100, SCHEDULER) <= 5 then
      note("coroutine.close")
      count("coroutine.close")
      local ok, err = coroutine.close(co)
      if not ok then
        fail("a coroutine closed while suspended reported " .. describe(err))
      end
      table.remove(tasks, i)
    else
      local ok, err = coroutine.resume(co)
      if not ok then
        fail("a coroutine failed: " .. describe(type(err) == "table" and tostring(err) or err)
          .. "\n" .. debug.traceback(co))
      end
      if coroutine.status(co) == "dead" then
        table.remove(tasks, i)
      end
    end
  end
  portalock.set_scheduler(nil)
end

-- ---------------------------------------------------------------- the run

while step < iterations do
  if chance(5) then
    interleave(2 + rand(3))
  else
    one_step()
  end
end

-- Everything released and dropped: no descriptor may be left.
step = step + 1
note("release everything")
for _, entry in ipairs(objects) do
  local obj = entry.obj
  if entry.class == "atomic" then
    obj:abort()
  elseif entry.class ~= "Lockable" then
    pcall(getmetatable(obj).__close, obj)
  end
  if io.type(entry.handle) == "file" then
    entry.handle:close()
  end
end
objects = nil
-- LuaJIT's compiled traces keep the objects they were specialised on (a waiting loop's
-- closure and the lock it captured) alive until the traces are flushed. A hold's io handle
-- becomes garbage only after the weak tables that led to it were cleared, and a finalized
-- object is freed one cycle later: a few full cycles.
if jit then
  jit.flush()
end
for _ = 1, 4 do
  collectgarbage()
end
local descriptors_after = testhelper.fd_count()
for _, name in ipairs(sem_names) do
  pcall(portalock.Semaphore.unlink, name)
end
os.execute("rm -rf '" .. dir .. "'")
if descriptors_after ~= descriptors_before then
  local pipe = io.popen("ls -l /proc/" .. testhelper.getpid() .. "/fd")
  local listing = pipe:read("*a")
  pipe:close()
  fail(string.format("%d descriptors open at the start, %d at the end:\n%s", descriptors_before,
    descriptors_after, listing))
end
local counts = {}
for what, n in pairs(tally) do
  counts[#counts + 1] = what .. " " .. n
end
table.sort(counts)
print("api_fuzz: " .. table.concat(counts, ", "))
print(string.format("api_fuzz: %d steps, every invariant held (seed %d)", step, seed))
