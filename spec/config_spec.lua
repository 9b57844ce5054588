-- The configuration front end: declarations, the registry, and one ConfigError with
-- "<chunkname>:<line>:" for every mistake.
local portalock = require "portalock"
local config = portalock.config
local helper = require "spec.support.helper"

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

  it("loads a file, from PORTALOCK_CONFIG's place or a given path", function()
    local path = dir .. "/portalock.lua"
    helper.write(path, string.format('directory %q\nlock "one" {}\n', dir))
    local reg = assert(config.load(path))
    assert.are.equal(dir .. "/one.lock", reg:lock("one").filename)
    assert.are.equal(path, config.find(path))
  end)

  it("loads the example config in examples/", function()
    local reg = assert(config.load("examples/portalock.conf.lua"))
    assert.are.same({"migrations", "cache", "daemon", "encoders", "gpus"}, reg:names())
    assert.are.equal("/tmp/migrations.lock", reg:lock("migrations").filename)
  end)

  local malformed = {
    {"unknown option", 'lock "a" { filename = "/tmp/a", colour = 1 }', 1, "unknown option colour"},
    {"wrong type", 'lock "a" { filename = "/tmp/a", timeout = "soon" }', 1,
      "option timeout (soon) must be a number >= 0"},
    {"negative timeout", '\nlock "a" { filename = "/tmp/a", timeout = -1 }', 2, "must be a number >= 0"},
    {"zero check_interval", 'lock "a" { filename = "/tmp/a", check_interval = 0 }', 1, "must be a number > 0"},
    {"boolean option", 'lock "a" { filename = "/tmp/a", fail_when_locked = 1 }', 1, "must be true or false"},
    {"bad backend", 'lock "a" { filename = "/tmp/a", backend = "nfs" }', 1, "must be one of flock, ofd, posix"},
    {"duplicate name", 'lock "a" { filename = "/tmp/a" }\nrlock "a" { filename = "/tmp/b" }', 2,
      'rlock "a": the name is already declared (lock, line 1)'},
    {"semaphore maximum of 0", 'bounded_semaphore "w" { maximum = 0, directory = "/tmp" }', 1,
      "option maximum (0) must be an integer >= 1"},
    {"missing maximum", 'bounded_semaphore "w" { directory = "/tmp" }', 1, "option maximum is required"},
    {"fractional value", 'semaphore "s" { value = 1.5 }', 1, "must be an integer >= 0"},
    {"relative directory", 'directory "locks"', 1, "directory (locks) must be an absolute path"},
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
    {"unknown defaults option", 'defaults { colour = "red" }', 1, "defaults: unknown option colour"},
    {"redis is reserved", 'redis "main" { host = "x" }', 1, "redis connections are not supported yet"},
    {"runtime error", 'local t = nil\nlocal x = t.field', 2, "attempt to index"},
    {"positional option", 'lock "a" { "/tmp/a" }', 1, "unknown option 1"},
    {"declaration without options", 'directory "/tmp"\nlock "a"\nlock "b" {}', 2,
      'lock "a": no options table follows (write lock "a" {})'},
  }
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

    it("stops a runaway loop", function()
      local _, err = config.load_string("local n = 0\nwhile true do n = n + 1 end", "loop.conf")
      assert.are.equal("ConfigError", err.kind)
      assert.matches("^loop%.conf:2: the config ran more than", err.message)
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
