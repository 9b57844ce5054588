local portalock = require "portalock"
local helper = require "spec.support.helper"

-- Misuse raises a Lua error that names the function, the argument and the value.
describe("bad input", function()
  local dir, path

  setup(function()
    dir = helper.tmpdir()
    path = dir .. "/bad.lock"
  end)

  teardown(function()
    helper.rmtree(dir)
  end)

  local function raises(expected, fn, ...)
    local ok, message = pcall(fn, ...)
    assert.is_false(ok, "no error raised")
    assert.are.equal("string", type(message))
    for _, fragment in ipairs(expected) do
      assert.is_truthy(message:find(fragment, 1, true), "'" .. fragment .. "' not in: " .. message)
    end
  end

  local cases = {
    {"a negative timeout, with a hint", {"bad argument 'timeout' to 'Lock' (-1)", ">= 0", "infinity waits forever"},
      function() portalock.Lock(path, {timeout = -1}) end},
    {"a NaN timeout", {"'timeout'", "nan", "NaN"},
      function() portalock.Lock(path, {timeout = 0 / 0}) end},
    {"a timeout of the wrong type", {"'timeout'", '"5"', "number"},
      function() portalock.Lock(path, {timeout = "5"}) end},
    {"a long string, quoting only its start", {"bad argument 'timeout' to 'Lock' (\""
      .. ("x"):rep(60) .. "\"... (100000 bytes)): must be a number"},
      function() portalock.Lock(path, {timeout = ("x"):rep(100000)}) end},
    {"a negative check_interval", {"bad argument 'check_interval' to 'Lock' (-1)", ">= 0"},
      function() portalock.Lock(path, {check_interval = -1}) end},
    {"an unknown option name", {"'Lock'", "unknown option", '"tiemout"'},
      function() portalock.Lock(path, {tiemout = 1}) end},
    {"options that are not a table", {"bad argument 'opts' to 'Lock'", "table"},
      function() portalock.Lock(path, 5) end},
    {"a filename that is not a string", {"bad argument 'filename' to 'Lock' (42)", "string"},
      function() portalock.Lock(42) end},
    {"a missing filename", {"bad argument 'filename' to 'Lock' (nil)"},
      function() portalock.Lock() end},
    {"unknown flags", {"bad argument 'flags' to 'Lock' (16)", "LOCK_SH"},
      function() portalock.Lock(path, {flags = 16}) end},
    {"both shared and exclusive", {"bad argument 'flags' to 'Lock' (3)", "exactly one"},
      function() portalock.Lock(path, {flags = 3}) end},
    {"LOCK_UN as a lock flag", {"bad argument 'flags' to 'lock' (8)", "unlock"},
      function() portalock.lock(io.stdout, portalock.LOCK_UN) end},
    {"an unknown backend", {"bad argument 'backend' to 'Lock' (\"lockf\")", '"flock"'},
      function() portalock.Lock(path, {backend = "lockf"}) end},
    {"a bad mode", {"bad argument 'mode' to 'Lock' (\"x\")", '"r+"'},
      function() portalock.Lock(path, {mode = "x"}) end},
    {'"w" with a shared lock', {"bad argument 'mode' to 'Lock' (\"w\")", "LOCK_EX"},
      function() portalock.Lock(path, {mode = "w", flags = portalock.LOCK_SH}) end},
    {"a shared ofd lock on a write-only mode", {"bad argument 'mode' to 'Lock' (\"a\")", "readable"},
      function() portalock.Lock(path, {backend = "ofd", flags = portalock.LOCK_SH}) end},
    {"an exclusive posix lock on a read-only mode", {"bad argument 'mode' to 'Lock' (\"r\")", "writable"},
      function() portalock.Lock(path, {backend = "posix", mode = "r"}) end},
    {"a perm out of range", {"bad argument 'perm' to 'Lock' (512)", "0o777 (511)"},
      function() portalock.Lock(path, {perm = 512}) end},
    {"a setuid perm", {"bad argument 'perm' to 'Lock' (2541)", "0o777 (511)"},
      function() portalock.Lock(path, {perm = tonumber("4755", 8)}) end},
    -- Lua has no octal literals: 0666 is 666 (0o1232, a file nobody could read); the rule
    -- refuses it and the message says how to write the mode that was meant.
    {"a mode written in octal", {"bad argument 'perm' to 'Lock' (666)", "0o777 (511)",
      'Lua has no octal literals: 0666 is the number 666; write tonumber("666", 8)'},
      function() portalock.Lock(path, {perm = 0666}) end},
    {"a mode written in octal, for a bounded semaphore",
      {"bad argument 'perm' to 'NamedBoundedSemaphore' (644)", 'write tonumber("644", 8)'},
      function() portalock.NamedBoundedSemaphore(2, {perm = 0644}) end},
    {"a mode written in octal, for a counting semaphore",
      {"bad argument 'perm' to 'Semaphore' (660)", 'write tonumber("660", 8)'},
      function() portalock.Semaphore(1, {name = "x", perm = 0660}) end},
    {"a huge perm", {"bad argument 'perm' to 'Lock' (1e+300)", "0o777 (511)"},
      function() portalock.Lock(path, {perm = 1e300}) end},
    {"a fractional perm", {"bad argument 'perm' to 'Lock' (4.5)"},
      function() portalock.Lock(path, {perm = 4.5}) end},
    {"a perm out of range for a bounded semaphore",
      {"bad argument 'perm' to 'NamedBoundedSemaphore' (-1)", "0o777"},
      function() portalock.NamedBoundedSemaphore(2, {perm = -1}) end},
    -- The C core refuses an infinite check_interval: the Lua check must say so in its own words
    -- (found by spec/support/api_fuzz.lua: it raised "lock.lua:249: bad option ...").
    {"an infinite check_interval", {"bad argument 'check_interval' to 'Lock' (inf)", "finite"},
      function() portalock.Lock(path, {check_interval = math.huge}) end},
    {"an infinite check_interval to acquire", {"bad argument 'check_interval' to 'acquire' (inf)", "finite"},
      function() portalock.Lock(path):acquire({check_interval = math.huge, timeout = 0}) end},
    {"an infinite check_interval for a Semaphore", {"bad argument 'check_interval' to 'Semaphore' (inf)"},
      function() portalock.Semaphore(1, {check_interval = math.huge}) end},
    {"an infinite check_interval for a bounded semaphore",
      {"bad argument 'check_interval' to 'NamedBoundedSemaphore' (inf)"},
      function() portalock.NamedBoundedSemaphore(2, {check_interval = math.huge}) end},
    {"an infinite check_interval for a Lockable", {"bad argument 'check_interval' to 'Lockable.init' (inf)"},
      function() portalock.Lockable.init({}, {name = "x", check_interval = math.huge}) end},
    {"fail_when_locked that is not a boolean", {"bad argument 'fail_when_locked' to 'Lock' (1)", "boolean"},
      function() portalock.Lock(path, {fail_when_locked = 1}) end},
    {"a negative timeout to acquire", {"bad argument 'timeout' to 'acquire' (-0.5)"},
      function() portalock.Lock(path):acquire({timeout = -0.5}) end},
    {"a constructor option passed to acquire", {"'acquire'", "unknown option", '"mode"'},
      function() portalock.Lock(path):acquire({mode = "w"}) end},
    {"acquire called with a dot", {"bad argument 'self' to 'acquire'", "obj:acquire"},
      function() portalock.Lock(path).acquire() end},
    {"a mode for a TemporaryFileLock", {"'TemporaryFileLock'", "unknown option", '"mode"'},
      function() portalock.TemporaryFileLock(path, {mode = "a"}) end},
    {"a shared PidFileLock", {"bad argument 'flags' to 'PidFileLock' (1)", "exclusive"},
      function() portalock.PidFileLock(path, {flags = portalock.LOCK_SH}) end},
    {"an RLock owner that is not a function", {"bad argument 'owner' to 'RLock'", "function"},
      function() portalock.RLock(path, {owner = "me"}) end},
    {"lock() on a closed file", {"bad argument 'file' to 'lock'", "closed"},
      function()
        local fh = assert(io.open(path, "a"))
        fh:close()
        portalock.lock(fh, portalock.LOCK_EX)
      end},
    {"lock() on something that is not a file", {"bad argument 'file' to 'lock' (\"/etc/passwd\")"},
      function() portalock.lock("/etc/passwd", portalock.LOCK_EX) end},
    {"unlock() on a negative descriptor", {"bad argument 'file' to 'unlock' (-1)"},
      function() portalock.unlock(-1) end},
    -- The core checks lock()/unlock() arguments itself (check.lua only words the message):
    -- every value it refuses must get a message here, not a bare C argument error.
    {"lock() on a descriptor beyond FD_MAX", {"bad argument 'file' to 'lock' (2147483648)", "0..2147483647"},
      function() portalock.lock(2 ^ 31, portalock.LOCK_EX) end},
    {"lock() with flags given as a string", {"bad argument 'flags' to 'lock' (\"6\")"},
      function() portalock.lock(io.stdout, "6") end},
    {"lock() with a fractional descriptor", {"bad argument 'file' to 'lock' (1.5)"},
      function() portalock.lock(1.5, portalock.LOCK_EX) end},
    {"unlock() with an unknown backend", {"bad argument 'backend' to 'unlock' (\"fcntl\")"},
      function() portalock.unlock(io.stdout, "fcntl") end},
    {"read_pid without a filename", {"bad argument 'filename' to 'read_pid' (nil)"},
      function() portalock.read_pid() end},
    {"with() without a function", {"bad argument 'fn' to 'with' (nil)", "function"},
      function() portalock.with(portalock.Lock(path)) end},
    {"with() on something that is not a lock", {"bad argument 'obj' to 'with'"},
      function() portalock.with({}, function() end) end},
    {"a scheduler that is not a function", {"bad argument 'sleep' to 'set_scheduler' (true)"},
      function() portalock.set_scheduler(true) end},
  }

  for _, case in ipairs(cases) do
    it("rejects " .. case[1], function()
      raises(case[2], case[3])
    end)
  end

  it("rejects assigning to lock.filename", function()
    raises({"filename", "read-only"}, function() portalock.Lock(path).filename = "x" end)
  end)

  it("points the error at the caller's line", function()
    local ok, message = pcall(function() portalock.Lock(path, {timeout = -1}) end)
    assert.is_false(ok)
    assert.matches("bad_input_spec%.lua:%d+:", message)
  end)

  it("refuses to step an acquisition whose handle's finalizer has run", function()
    local core = require "portalock.core"
    local handle = core.new_lock("lock", path, {})
    local acq = handle:begin(1, 0.1, false)
    getmetatable(handle).__gc(handle) -- as lua_close, or a finalizer called by hand, runs it
    local ok, message = pcall(acq.step, acq)
    assert.is_false(ok)
    assert.matches("its handle is already freed", message)
  end)
end)
