-- The configuration front end: declarations, the registry, and one ConfigError with
-- "<chunkname>:<line>:" for every mistake.
local portalock = require "portalock"
local config = portalock.config
local core = require "portalock.core"
local helper = require "spec.support.helper"
local cli = require "spec.support.cli"
local redis_server = require "spec.support.redis_server"

describe("config", function()
  local dir

  before_each(function()
    dir = helper.tmpdir()
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  it("declares every kind of resource and hands out one object per name", function()
    local reg = assert(config.load_string(string.format([[
directory %q
defaults { timeout = 7 }
lock "migrations" { timeout = 60 }
rlock "cache" { filename = "cache.file" }
temporary_lock "build" {}
pid_file_lock "daemon" { filename = %q }
bounded_semaphore "workers" { maximum = 3 }
semaphore "gpus" { value = 2, name = %q }
]], dir, dir .. "/daemon.pid", "portalock-spec-config-" .. require("portalock.core").getpid()), "app.conf"))
    assert.are.same({"migrations", "cache", "build", "daemon", "workers", "gpus"}, reg:names())
    local lock = reg:lock("migrations")
    assert.are.equal(lock, reg:lock("migrations"))
    assert.are.equal(dir .. "/migrations.lock", lock.filename)
    assert.are.equal(dir .. "/cache.file", reg:rlock("cache").filename)
    assert.are.equal(dir .. "/build.lock", reg:temporary_lock("build").filename)
    assert.are.equal(dir .. "/daemon.pid", reg:pid_file_lock("daemon").filename)
    assert(lock:acquire())
    assert.is_true(lock:locked())
    lock:release()
    local workers = reg:bounded_semaphore("workers")
    assert.are.equal("workers", workers.name)
    local slot = assert(workers:acquire())
    assert.are.equal(dir .. "/workers.0" .. slot.number .. ".lock", slot.filename)
    slot:release()
    local gpus = reg:semaphore("gpus")
    assert.is_true(gpus:acquire())
    gpus:release()
    gpus:unlink()
    assert.are.equal("lock", reg:kind("migrations"))
    assert.has_error(function() reg:semaphore("migrations") end,
      'portalock.config: "migrations" is a lock, not a semaphore')
    assert.has_error(function() reg:lock("nope") end, 'portalock.config: no resource named "nope" is declared')
  end)

  it("gives a bounded semaphore its perm: the exact mode of the slot files it creates", function()
    local reg = assert(config.load_string(string.format([[
bounded_semaphore "workers" { maximum = 1, directory = %q, perm = 432 } -- 0660
]], dir), "app.conf"))
    local slot = assert(reg:bounded_semaphore("workers"):acquire())
    assert.are.equal("660\n", helper.capture("stat -c %a " .. helper.quote(slot.filename)))
    slot:release()
  end)

  describe("Redis", function()
    if not core.redis_session then
      pending("portalock.core was built without hiredis (libhiredis-dev)")
      return
    end

    local source = [[
redis "main" { url = "redis://127.0.0.1:6390/2", ttl = 12, connect_timeout = 2, command_timeout = 3 }
defaults { timeout = 7 }
redis_lock "nightly" { redis = "main" }
redis_lock "shared" { redis = "main", channel = "shared-channel", timeout = 1, fail_when_locked = true,
  visible = false }
redis_semaphore "seats" { redis = "main", maximum = 3, check_interval = 0.5 }
redis_semaphore "other" { redis = "main", name = "other-name", maximum = 2 }
redis_lock "local" {}
lock "main" { filename = "/tmp/main.lock" }
]]

    it("declares connections, Redis locks and semaphores, and hands out one object per name", function()
      local reg = assert(config.load_string(source, "app.conf"))
      -- a connection is no resource: a lock may have its name
      assert.are.same({"nightly", "shared", "seats", "other", "local", "main"}, reg:names())
      assert.are.equal("lock", reg:kind("main"))
      local nightly = reg:redis_lock("nightly")
      assert.are.equal(nightly, reg:get("nightly"))
      assert.are.equal("nightly", nightly.name)
      assert.are.equal(7, nightly.timeout) -- from defaults
      assert.are.equal("shared-channel", reg:redis_lock("shared").channel)
      assert.are.equal(1, reg:redis_lock("shared").timeout)
      assert.is_true(reg:redis_lock("shared").fail_when_locked)
      assert.is_false(reg:redis_lock("shared").visible)
      assert.is_true(nightly.visible)
      assert.are.equal(3, reg:redis_semaphore("seats").maximum)
      assert.are.equal(0.5, reg:redis_semaphore("seats").check_interval)
      assert.are.equal("other-name", reg:redis_semaphore("other").name)
      assert.is_false(reg:redis_lock("local"):check()) -- made, not connected
      assert.has_error(function() reg:redis_semaphore("nightly") end,
        'portalock.config: "nightly" is a redis_lock, not a redis_semaphore')
    end)

    it("describes a declaration with its connection's settings", function()
      local reg = assert(config.load_string(source, "app.conf"))
      assert.are.same({kind = "redis_semaphore", class = "RedisSemaphore", file = false, redis = true,
        argument = "seats", maximum = 3, options = {redis = "redis://127.0.0.1:6390/2", ttl = 12,
        connect_timeout = 2, command_timeout = 3, timeout = 7, check_interval = 0.5}},
        reg:declaration("seats"))
      assert.are.same({kind = "redis_lock", class = "RedisLock", file = false, redis = true,
        argument = "shared-channel", options = {redis = "redis://127.0.0.1:6390/2", ttl = 12,
        connect_timeout = 2, command_timeout = 3, timeout = 1, fail_when_locked = true,
        visible = false}}, reg:declaration("shared"))
      -- without a connection, RedisLock's own default server
      assert.are.same({timeout = 7}, reg:declaration("local").options)
    end)

    it("refuses every Redis declaration in a build without Redis", function()
      local out, status = helper.capture(helper.lua_command([[
        require("portalock.core").redis_session = nil -- as a build without PORTALOCK_HAVE_REDIS
        local _, err = require("portalock").config.load_string(...)
        io.write(err.message)]], 'redis "main" {}\nredis_lock "a" { redis = "main" }'))
      assert.are.equal(0, status, out)
      assert.matches('^config:1: redis "main": RedisLock: portalock was built without Redis support', out)
    end)

    it("hands out locks that hold on a real server", function()
      local missing = redis_server.missing()
      if missing then
        pending(missing)
        return
      end
      local server = redis_server.start()
      finally(function() server:close() end)
      local reg = assert(config.load_string(string.format([[
redis "main" { url = %q, ttl = 5 }
redis_lock "job" { redis = "main", timeout = 0.2 }
redis_semaphore "seats" { redis = "main", maximum = 2, timeout = 0 }
]], server.url), "app.conf"))
      local job = reg:redis_lock("job")
      assert.are.equal(job, assert(job:acquire()))
      assert.matches("^[1-9]%d*$", job.token)
      local other = portalock.RedisLock("job", {redis = server.url, timeout = 0})
      local got, err = other:acquire()
      assert.is_nil(got)
      assert.are.equal("AlreadyLocked", err.kind)
      job:release()
      assert(other:acquire())
      other:release()
      local seats = reg:redis_semaphore("seats")
      assert(seats:acquire())
      assert.is_true(seats:check())
      seats:release()
    end)
  end)

  it("loads a file, from PORTALOCK_CONFIG's place or a given path", function()
    local path = dir .. "/portalock.lua"
    helper.write(path, string.format('directory %q\nlock "one" {}\n', dir))
    local reg = assert(config.load(path))
    assert.are.equal(dir .. "/one.lock", reg:lock("one").filename)
    assert.are.equal(path, config.find(path))
  end)

  it("refuses a directory, a FIFO, a device and an oversized file without reading them", function()
    local fifo = dir .. "/fifo.lua"
    assert.are.equal(0, helper.run("mkfifo " .. helper.quote(fifo)))
    local big = dir .. "/big.lua"
    helper.write(big, "-- " .. ("x"):rep(config.FILE_LIMIT_BYTES) .. "\n")
    local cases = {
      {"/etc", "is a directory, not a regular file"},
      {fifo, "is a FIFO, not a regular file"}, -- opening it must not wait for a writer
      {"/dev/zero", "is a device, not a regular file"}, -- nor read it without end
      {big, "is larger than the limit of " .. config.FILE_LIMIT_BYTES .. " bytes"},
    }
    for _, case in ipairs(cases) do
      local started = core.monotonic()
      local reg, err = config.load(case[1])
      assert.is_nil(reg)
      assert.are.equal("ConfigError", err.kind)
      assert.are.equal(case[1] .. ": " .. case[2], err.message)
      assert.are.equal(case[1], err.path)
      assert.is_number(err.errno)
      assert.is_true(core.monotonic() - started < 5, case[1])
    end
    -- the limit itself is fine
    helper.write(big, string.format('directory %q\nlock "edge" {}\n', dir))
    local f = assert(io.open(big, "ab"))
    f:write(("-"):rep(config.FILE_LIMIT_BYTES - #helper.read(big)))
    f:close()
    assert.are.equal(dir .. "/edge.lock", assert(config.load(big)):lock("edge").filename)
  end)

  it("loads the example config in examples/", function()
    local reg = assert(config.load("examples/portalock.conf.lua"))
    assert.are.same({"migrations", "cache", "daemon", "encoders", "gpus"}, reg:names())
    assert.are.equal("/tmp/migrations.lock", reg:lock("migrations").filename)
  end)

  local malformed = {
    {"unknown option", 'lock "a" { filename = "/tmp/a", colour = 1 }', 1, 'unknown option "colour"'},
    {"wrong type", 'lock "a" { filename = "/tmp/a", timeout = "soon" }', 1,
      [[lock "a": bad argument 'timeout' to 'Lock' ("soon"): must be a number of seconds]]},
    {"negative timeout", '\nlock "a" { filename = "/tmp/a", timeout = -1 }', 2, "(-1): must be >= 0"},
    {"negative check_interval", 'lock "a" { filename = "/tmp/a", check_interval = -1 }', 1,
      "'check_interval' to 'Lock' (-1): must be a finite number >= 0"},
    {"boolean option", 'lock "a" { filename = "/tmp/a", fail_when_locked = 1 }', 1, "must be a boolean"},
    {"bad backend", 'lock "a" { filename = "/tmp/a", backend = "nfs" }', 1, 'must be "flock", "ofd" or "posix"'},
    {"duplicate name", 'lock "a" { filename = "/tmp/a" }\nrlock "a" { filename = "/tmp/b" }', 2,
      'rlock "a": the name is already declared (lock, line 1)'},
    {"semaphore maximum of 0", 'bounded_semaphore "w" { maximum = 0, directory = "/tmp" }', 1,
      "bad argument 'maximum' to 'NamedBoundedSemaphore' (0)"},
    {"missing maximum", 'bounded_semaphore "w" { directory = "/tmp" }', 1, "option maximum is required"},
    {"fractional value", 'semaphore "s" { value = 1.5 }', 1, "bad argument 'value' to 'Semaphore' (1.5)"},
    -- the config once took `value or 1`, so false became 1 instead of an error
    {"value false", 'semaphore "s" { value = false }', 1, "bad argument 'value' to 'Semaphore' (false)"},
    -- Values that load() once accepted and only the constructor refused (issue 14, item 4):
    -- each is the constructor's own complaint, at the line of the declaration.
    {"maximum 1e9", 'directory "/tmp"\nbounded_semaphore "w" {\n  maximum = 1e9 }', 2,
      'bounded_semaphore "w": bad argument \'maximum\' to \'NamedBoundedSemaphore\' (1000000000): '
      .. "must be an integer within 1..10000"},
    {"flags 99", 'lock "a" { filename = "/tmp/a", flags = 99 }', 1, "bad argument 'flags' to 'Lock' (99)"},
    {"mode q", 'rlock "a" { filename = "/tmp/a", mode = "q" }', 1, [[bad argument 'mode' to 'RLock' ("q")]]},
    {"perm 1e9", 'pid_file_lock "a" { filename = "/tmp/a", perm = 1e9 }', 1,
      "bad argument 'perm' to 'PidFileLock' (1000000000)"},
    {"semaphore value 1e12", 'semaphore "s" { value = 1e12 }', 1,
      "bad argument 'value' to 'Semaphore' (1000000000000)"},
    {"semaphore perm 4096", '\n\nsemaphore "s" { perm = 4096 }', 3, "bad argument 'perm' to 'Semaphore' (4096)"},
    {"bounded_semaphore perm 1e9", 'bounded_semaphore "w" { maximum = 2, directory = "/tmp", perm = 1e9 }', 1,
      "bad argument 'perm' to 'NamedBoundedSemaphore' (1000000000)"},
    {"pattern without {number}",
      'bounded_semaphore "w" { maximum = 2, directory = "/tmp", filename_pattern = "{name}.lock" }', 1,
      "bad option 'filename_pattern' (\"{name}.lock\"): must contain {number} when maximum > 1"},
    {"mode and flags that only fail together", 'directory "/tmp"\ndefaults { flags = 1 }\nlock "a" { mode = "w" }', 3,
      [[lock "a": bad argument 'mode' to 'Lock' ("w")]]},
    {"a defaults value no kind accepts", 'directory "/tmp"\ndefaults { timeout = -1 }\nlock "a" {}', 2,
      "defaults: option timeout: bad argument 'timeout' to 'Lock' (-1)"},
    {"a defaults value, declared later", 'directory "/tmp"\nlock "a" {}\n\ndefaults { perm = 1e9 }', 4,
      "defaults: option perm: bad argument 'perm' to 'Lock' (1000000000)"},
    {"a defaults value one kind refuses",
      'directory "/tmp"\ndefaults { flags = 1 }\nlock "a" {}\ntemporary_lock "t" {}', 4,
      [[temporary_lock "t": bad argument 'flags' to 'TemporaryFileLock' (1)]]},
    {"relative directory", 'directory "locks"', 1, 'directory ("locks") must be an absolute path'},
    {"long relative directory", 'local s = "d"\nfor _ = 1, 10 do s = s .. s end\ndirectory(s)', 3,
      'directory ("' .. ("d"):rep(60) .. '"... (1024 bytes)) must be an absolute path'},
    {"relative resource directory", 'lock "a" { directory = "tmp" }', 1, "must be an absolute path"},
    {"relative filename without a directory", '\n\nlock "a" {}', 3,
      'lock "a": the filename a.lock is relative and no directory is declared'},
    {"directory twice", 'directory "/tmp"\ndirectory "/var/tmp"', 2, "directory is declared twice"},
    {"syntax error", 'lock "a" {', 1, "expected"},
    {"syntax error later", 'directory "/tmp"\n\nlock "a" { timeout = = 1 }', 3, "unexpected symbol"},
    {"options not a table", 'lock "a" "b"', 1, "expected a table of options"},
    {"bad name", 'lock "a b" {}', 1, "the name must be a string"},
    {"name not a string", 'lock(5) {}', 1, "the name must be a string"},
    {"unknown keyword", 'mutex "a" {}', 1, "attempt to call"},
    {"unknown defaults option", 'defaults { colour = "red" }', 1, 'defaults: unknown option "colour"'},
    {"runtime error", 'local t = nil\nlocal x = t.field', 2, "attempt to index"},
    {"positional option", 'lock "a" { "/tmp/a" }', 1, "unknown option 1"},
    {"declaration without options", 'directory "/tmp"\nlock "a"\nlock "b" {}', 2,
      'lock "a": no options table follows (write lock "a" {})'},
  }
  -- Redis declarations: checked by the RedisLock constructor (a URL by the core), at the line
  -- of the declaration; a build without Redis refuses them all (tested below).
  local malformed_redis = {
    {"a Redis URL with a bad port", '\nredis "main" { url = "redis://127.0.0.1:99999/0" }', 2,
      [[redis "main": bad argument 'url' ("redis://127.0.0.1:99999/0"): the port "99999" must be]]},
    {"a Redis URL of another scheme", 'redis "main" { url = "http://x/" }', 1,
      [[redis "main": bad argument 'url' ("http://x/"): must start with "redis://" or "unix://"]]},
    {"a Redis URL's password", 'redis "main" { url = "redis://u:secret@h:0/0" }', 1,
      [[("redis://u:***@h:0/0")]]},
    {"a Redis URL that is no string", 'redis "main" { url = 6379 }', 1,
      'redis "main": option url (6379) must be a string'},
    {"a Redis ttl of 0", 'redis "main" { ttl = 0 }', 1,
      "redis \"main\": bad argument 'ttl' to 'RedisLock' (0): must be a positive number of seconds"},
    {"a Redis connect_timeout", 'redis "main" { connect_timeout = -1 }', 1,
      "bad argument 'connect_timeout' to 'RedisLock' (-1)"},
    {"a Redis command_timeout", 'redis "main" { command_timeout = "5" }', 1,
      [[bad argument 'command_timeout' to 'RedisLock' ("5")]]},
    {"an unknown connection option", 'redis "main" { host = "x" }', 1,
      'redis "main": unknown option "host"'},
    {"a connection declared twice", 'redis "main" {}\nredis "main" {}', 2,
      'redis "main": the name is already declared (redis, line 1)'},
    {"a connection without options", 'redis "main"\nredis_lock "a" {}', 1,
      'redis "main": no options table follows (write redis "main" {})'},
    {"an unknown connection", 'redis "main" {}\n\nredis_lock "a" { redis = "mian" }', 3,
      'redis_lock "a": no connection "mian" is declared (write redis "mian" { url = ... })'},
    {"a connection that is no name", 'redis_semaphore "a" { redis = {}, maximum = 1 }', 1,
      'redis_semaphore "a": option redis (table) must name a connection (a string)'},
    {"an unknown connection in defaults", 'defaults { redis = "main" }', 1,
      'defaults: option redis: no connection "main" is declared'},
    {"a bad Redis lock timeout", 'redis "m" {}\nredis_lock "a" { redis = "m", timeout = -1 }', 2,
      "redis_lock \"a\": bad argument 'timeout' to 'RedisLock' (-1): must be >= 0"},
    {"an empty channel", 'redis_lock "a" { channel = "" }', 1,
      "redis_lock \"a\": bad argument 'channel' to 'RedisLock' (\"\"): must not be empty"},
    {"a Redis lock option of a file lock", 'redis_lock "a" { filename = "/tmp/a" }', 1,
      'redis_lock "a": unknown option "filename"'},
    {"a Redis semaphore without maximum", 'redis_semaphore "s" {}', 1, "option maximum is required"},
    {"visible for a Redis semaphore", 'redis_semaphore "s" { maximum = 1, visible = true }', 1,
      'redis_semaphore "s": unknown option "visible"'},
    {"visible not a boolean", 'redis_lock "a" { visible = 1 }', 1,
      "redis_lock \"a\": bad argument 'visible' to 'RedisLock' (1): must be a boolean"},
    {"a Redis semaphore maximum of 0", 'redis_semaphore "s" { maximum = 0 }', 1,
      "redis_semaphore \"s\": bad argument 'maximum' to 'RedisSemaphore' (0)"},
    {"a Redis name taken by a lock", 'lock "a" { filename = "/tmp/a" }\nredis_lock "a" {}', 2,
      'redis_lock "a": the name is already declared (lock, line 1)'},
  }
  if core.redis_session then
    for _, case in ipairs(malformed_redis) do
      malformed[#malformed + 1] = case
    end
  end

  for _, case in ipairs(malformed) do
    local what, source, line, text = case[1], case[2], case[3], case[4]
    it("reports " .. what .. " as app.conf:" .. line, function()
      local reg, err = config.load_string(source, "app.conf")
      assert.is_nil(reg)
      assert.are.equal("ConfigError", err.kind)
      assert.is_true(err:is(portalock.ConfigError))
      assert.are.equal("app.conf:" .. line .. ":", err.message:sub(1, #("app.conf:" .. line .. ":")), err.message)
      assert.is_truthy(err.message:find(text, 1, true), err.message)
    end)
  end

  describe("on the command line", function()
    local session

    before_each(function()
      session = cli.session(dir)
    end)

    after_each(function()
      session:cleanup()
    end)

    -- Each config loads no more than in the library: status, lock and run --name exit 78
    -- (the config is malformed) with the file:line: message, before touching anything.
    local cases = {
      {"status", 'lock "x" { filename = "%s/x.lock", flags = 99 }', {"status", "x"}, "'flags'"},
      {"lock", 'lock "x" { filename = "%s/x.lock", flags = 99 }', {"lock", "x", "--", "true"}, "'flags'"},
      {"status of a semaphore", 'semaphore "x" { value = 1e12 } -- %s', {"status", "x"}, "'value'"},
      {"run --name", 'bounded_semaphore "w" { maximum = 1e9, directory = "%s" }',
        {"run", "--name", "w", "--", "true"}, "'maximum'"},
      {"run --name, a pattern without {number}",
        'bounded_semaphore "w" { maximum = 2, directory = "%s", filename_pattern = "w.lock" }',
        {"run", "--name", "w", "--", "true"}, "{number}"},
    }
    for _, case in ipairs(cases) do
      it("exits 78 for " .. case[1], function()
        local path = dir .. "/bad.conf.lua"
        helper.write(path, string.format(case[2], dir))
        local args = {"--config", path}
        for _, arg in ipairs(case[3]) do
          args[#args + 1] = arg
        end
        local code, stdout, stderr = session:run(args)
        assert.are.equal(78, code, cli.describe(code, stdout, stderr))
        assert.is_truthy(stderr:find(path .. ":1: ", 1, true), stderr)
        assert.is_truthy(stderr:find(case[4], 1, true), stderr)
      end)
    end
  end)

  it("keeps a long chunkname whole in every message", function()
    local long = dir .. "/" .. string.rep("very-long-directory-name/", 4) .. "portalock.lua"
    for _, source in ipairs({'lock "a" {', 'lock "a" { colour = 1 }', 'local x = nil .. 1'}) do
      local _, err = config.load_string(source, long)
      assert.are.equal(long .. ":1:", err.message:sub(1, #long + 3), err.message)
    end
  end)

  describe("sandbox", function()
    local refused = {
      {"os.execute", 'os.execute("touch /tmp/portalock-pwned")'},
      {"io.open", 'io.open("/etc/passwd")'},
      {"require", 'require "os"'},
      {"load", 'load("return 1")()'},
      {"loadstring", 'loadstring("return 1")()'},
      {"dofile", 'dofile("/etc/passwd")'},
      {"debug", 'debug.sethook()'},
      {"getmetatable", 'getmetatable("").__index.rep("x", 10)'},
      {"string.rep method", 'local s = ("x"):rep(100)'},
      {"string.dump method", 'local s = ("x").dump(print)'},
      {"the string table", 'local s = string.rep("x", 10)'},
      {"_G", 'local g = _G.os'},
      {"rawget", 'rawget({}, 1)'},
      {"setmetatable", 'setmetatable({}, {})'},
      {"coroutine", 'coroutine.wrap(function() end)()'},
      {"pattern methods", 'local s = ("aaa"):find("(.-)(.-)b")'},
      {"gsub", 'local s = ("a"):gsub("a", "b")'},
    }
    for _, case in ipairs(refused) do
      it("refuses " .. case[1], function()
        local reg, err = config.load_string(case[2], "sandbox.conf")
        assert.is_nil(reg)
        assert.are.equal("ConfigError", err.kind)
        assert.matches("^sandbox%.conf:1:", err.message)
      end)
    end

    it("allows the vetted string methods and math", function()
      local reg = assert(config.load_string([[
local base = ("/TMP"):lower()
for i = 1, 3 do
  lock(("job-%d"):format(i)) { filename = base .. "/job" .. math.floor(i) .. ".lock" }
end
]], "ok.conf"))
      assert.are.same({"job-1", "job-2", "job-3"}, reg:names())
    end)

    it("keeps what it checked, whatever the config changes afterwards", function()
      local reg = assert(config.load_string(
        'directory "/tmp"\nlocal t = {timeout = 1}\nlock "a"(t)\nt.timeout = "bogus"\nt.filename = {}',
        "mutate.conf"))
      assert.are.equal("/tmp/a.lock", reg:lock("a").filename)
    end)

    it("stops a string that doubles past the memory limit", function()
      local _, err = config.load_string('local s = "x"\nfor _ = 1, 40 do s = s .. s end', "grow.conf")
      assert.are.equal("ConfigError", err.kind)
      assert.matches("^grow%.conf:2: the config used more than", err.message)
    end)

    -- Loads `source` in a fresh process, so that its peak RSS (VmHWM) measures this config
    -- alone: how much that peak grew (KiB), the limit (KiB), and the error's kind and message
    -- (nil, nil when it loaded).
    local function load_measured(source, chunkname)
      local code = [[
local source, chunkname = ...
local config = require "portalock.config"
local function peak_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end
collectgarbage("collect")
local before = peak_kb()
local reg, err = config.load_string(source, chunkname)
io.write(peak_kb() - before, "\t", config.MEMORY_LIMIT_KB, "\n")
io.write(reg == nil and err.kind or "loaded", "\n", err and err.message or "")
]]
      local output, status = helper.capture(helper.lua_command(code, source, chunkname))
      assert.are.equal(0, status, output)
      local grown, limit, kind, message = output:match("^(%d+)\t(%d+)\n(%a+)\n(.*)$")
      assert.is_not_nil(grown, output)
      return tonumber(grown), tonumber(limit), kind ~= "loaded" and kind or nil, message
    end

    -- The bound allows for the allocator's own overhead (and ASan's quarantine in the
    -- sanitizer CI).
    local function assert_within_limit(grown, limit)
      assert.is_true(grown < limit + 4096,
        string.format("grew by %d KiB against a limit of %d KiB", grown, limit))
    end

    it("holds the memory limit inside a single call (string.format of 150 MiB)", function()
      -- without the limit at the allocation this config reached about 300 MB
      local args = {}
      for i = 1, 150 do
        args[i] = "s"
      end
      local source = 'local s = "x"\nfor _ = 1, 20 do s = s .. s end\nlocal f = ""\n'
        .. 'for _ = 1, 150 do f = f .. "%s" end\nlocal r = f:format(' .. table.concat(args, ", ") .. ')\n'
      local grown, limit, kind, message = load_measured(source, "format.conf")
      assert.are.equal("ConfigError", kind)
      assert.are.equal("format.conf:5: the config used more than 16384 KiB of memory", message)
      assert_within_limit(grown, limit)
    end)

    it("holds the limit while checking defaults, and quotes only the start of a long value", function()
      -- a 4 MiB string as every default: each kind was built with it and the message
      -- quoted it whole (a message of 4 MB)
      local source = 'local s = "y"\nfor _ = 1, 22 do s = s .. s end\ndirectory "/tmp"\n'
        .. "defaults {check_interval = s, timeout = s, perm = s, mode = s, name = s, flags = s, "
        .. "maximum = s}\n"
      local grown, limit, kind, message = load_measured(source, "defaults.conf")
      assert.are.equal("ConfigError", kind)
      -- which option comes first is not defined (they share a line); the C core's messages
      -- quote at most 300 bytes
      assert.matches("^defaults%.conf:4: defaults: option [%w_]+: ", message)
      assert.is_true(#message < 500, message)
      assert_within_limit(grown, limit)
    end)

    it("holds the limit while building the declared objects, in one budget with the run", function()
      -- the run keeps 4 MiB; joining each filename to its directory copies it (this loaded,
      -- growing by 24 MB). Distinct directories: Lua 5.1 and LuaJIT keep one copy of equal
      -- strings.
      local source = 'local s = "y"\nfor _ = 1, 22 do s = s .. s end\ndirectory "/tmp"\n'
        .. 'lock "a" {directory = "/a", filename = s}\nlock "b" {directory = "/b", filename = s}\n'
        .. 'lock "c" {directory = "/c", filename = s}\nlock "d" {directory = "/d", filename = s}\n'
      local _, _, kind, message = load_measured(source, "build.conf")
      assert.are.equal("ConfigError", kind)
      local line = message:match("^build%.conf:(%d+): the config used more than 16384 KiB of memory$")
      assert.is_truthy(line and tonumber(line) >= 4, message) -- at a declaration, not the run
    end)

    it("declares bounded semaphores at a cost that does not grow with their maximum", function()
      -- each object allocated its slot order (maximum entries) in C at construction, outside
      -- the Lua heap: 5000 of maximum 10000 grew by 48 MB, 18 MB more than of maximum 1
      local source = 'for i = 1, 5000 do bounded_semaphore("n" .. i) {maximum = %d} end'
      local small, _, small_kind, small_message = load_measured(source:format(1), "small.conf")
      local large, _, large_kind, large_message = load_measured(source:format(10000), "large.conf")
      assert.is_nil(small_kind, small_message)
      assert.is_nil(large_kind, large_message)
      assert.is_true(large - small < 4096,
        string.format("maximum 10000 grew by %d KiB, maximum 1 by %d KiB", large, small))
    end)

    it("stops a runaway loop", function()
      local _, err = config.load_string("local n = 0\nwhile true do n = n + 1 end", "loop.conf")
      assert.are.equal("ConfigError", err.kind)
      assert.matches("^loop%.conf:2: the config ran more than", err.message)
    end)

    it("stops a loop whose instructions are slow, by its CPU time", function()
      -- Each comparison reads 2 MiB, so the loop stays far below the instruction limit.
      local source = 'local s = "x"\nfor _ = 1, 21 do s = s .. s end\nlocal t = s .. "y"\n'
        .. "while true do local _ = s < t end"
      local saved = config.CPU_LIMIT_SECONDS
      config.CPU_LIMIT_SECONDS = 0.3
      local started = os.clock()
      local _, err = config.load_string(source, "slow.conf")
      local spent = os.clock() - started
      config.CPU_LIMIT_SECONDS = saved
      assert.are.equal("ConfigError", err.kind)
      assert.matches("^slow%.conf:4: the config ran for more than 0.3 s of CPU", err.message)
      assert.is_true(spent < 3, string.format("the load took %.2f s of CPU", spent))
    end)

    it("stops a config that eats memory", function()
      local _, err = config.load_string("local t = {}\nwhile true do t[#t + 1] = {} end", "mem.conf")
      assert.are.equal("ConfigError", err.kind)
      assert.matches("^mem%.conf:2: the config ", err.message)
    end)

    it("restores string methods, hooks and the JIT afterwards, also after an error", function()
      config.load_string('local x = nil .. 1', "broken.conf")
      assert.are.equal("xx", ("x"):rep(2))
      assert.is_nil(debug.gethook())
    end)

    it("refuses binary chunks", function()
      local _, err = config.load_string(string.dump(function() end), "bin.conf")
      assert.matches("^bin%.conf:1: binary chunks are not accepted", err.message)
    end)
  end)
end)
