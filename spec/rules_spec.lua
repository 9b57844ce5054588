-- One owner for every rule of a value: the C core states the rule and its words
-- (core.rule_problem, core.semaphore_name_problem), and every layer that refuses the value
-- (the C object itself, the Lua constructor, a per-call option, the config file and the
-- command line) refuses it in those words, naming the argument and the value.
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local cli = require "spec.support.cli"

-- The message of the error `fn(...)` raises (an error table's message, or the string).
local function refusal(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no error")
  return type(err) == "table" and err.message or tostring(err)
end

local function assert_ends_with(message, phrase)
  assert.are.equal(phrase, message:sub(-#phrase), message)
end

describe("one owner for every rule", function()
  local dir, s

  before_each(function()
    dir = helper.tmpdir()
    s = cli.session(dir)
  end)

  after_each(function()
    s:cleanup()
    helper.rmtree(dir)
  end)

  -- The config line `declaration` is refused in the rule's words (and at its line).
  local function assert_config_refuses(declaration, phrase)
    local registry, err = portalock.config.load_string(declaration, "rules.lua")
    assert.is_nil(registry)
    assert.are.equal("ConfigError", err.kind)
    assert.are.equal("rules.lua:1: ", err.message:sub(1, 13), err.message)
    assert_ends_with(err.message, phrase)
    return err.message
  end

  -- `portalock ARGS` ends with a usage or config error that quotes the rule's words.
  local function assert_cli_refuses(args, phrase, code)
    local status, _, stderr = s:run(args)
    assert.are.equal(code, status, stderr)
    assert.is_truthy(stderr:find(phrase, 1, true), stderr)
  end

  it("timeout -1: C, Lock, acquire, Semaphore, bounded, Lockable, config, defaults, CLI", function()
    local phrase = core.rule_problem("timeout", -1)
    assert.are.equal("must be >= 0 (infinity waits forever)", phrase)
    local path = dir .. "/t.lock"
    assert_ends_with(refusal(core.new_lock, "lock", path, {timeout = -1}), phrase)
    assert.are.equal("bad argument 'timeout' to 'Lock' (-1): " .. phrase,
      refusal(portalock.Lock, path, {timeout = -1}):match("bad argument.*"))
    local lock = portalock.Lock(path)
    assert.are.equal("bad argument 'timeout' to 'acquire' (-1): " .. phrase,
      refusal(lock.acquire, lock, {timeout = -1}))
    assert_ends_with(refusal(portalock.RLock, path, {timeout = -1}), phrase)
    assert_ends_with(refusal(portalock.Semaphore, 1, {name = "rules", timeout = -1}), phrase)
    assert_ends_with(refusal(portalock.NamedBoundedSemaphore, 1, {directory = dir, timeout = -1}), phrase)
    assert_ends_with(refusal(portalock.Lockable.init, {}, {filename = path, timeout = -1}), phrase)
    assert_config_refuses('lock "a" { filename = "/tmp/a", timeout = -1 }', phrase)
    assert_config_refuses('defaults { timeout = -1 }', phrase)
    assert_cli_refuses({"lock", "-w", "-1", path, "true"}, phrase, 64)
    assert_cli_refuses({"run", "--dir", dir, "-w", "-1", "--", "true"}, phrase, 64)
    local config = dir .. "/portalock.lua"
    helper.write(config, 'lock "a" { filename = "/tmp/a", timeout = -1 }\n')
    assert_cli_refuses({"--config", config, "lock", "a", "true"}, phrase, 78)
  end)

  it("check_interval inf: C, Lock, acquire, Semaphore acquire, config", function()
    local phrase = core.rule_problem("check_interval", math.huge)
    assert.is_truthy(phrase:find("finite", 1, true), phrase)
    local path = dir .. "/c.lock"
    assert_ends_with(refusal(core.new_lock, "lock", path, {check_interval = math.huge}), phrase)
    assert_ends_with(refusal(portalock.Lock, path, {check_interval = math.huge}), phrase)
    local lock = portalock.Lock(path)
    assert_ends_with(refusal(lock.acquire, lock, {check_interval = math.huge}), phrase)
    local sem = portalock.Semaphore(1, {name = "rules_ci"})
    assert_ends_with(refusal(sem.acquire, sem, {check_interval = math.huge}), phrase)
    assert_config_refuses('semaphore "s" { check_interval = 1/0 }', phrase)
  end)

  it("perm, flags, maximum, semaphore value, perm and release: C, Lua, config, CLI", function()
    local path = dir .. "/p.lock"
    local phrase = core.rule_problem("perm", 4096)
    assert_ends_with(refusal(core.new_lock, "lock", path, {perm = 4096}), phrase)
    assert_ends_with(refusal(portalock.PidFileLock, path, {perm = 4096}), phrase)
    assert_config_refuses('pid_file_lock "p" { filename = "/tmp/p", perm = 4096 }', phrase)

    phrase = core.rule_problem("flags", 3)
    assert_ends_with(refusal(core.new_lock, "lock", path, {flags = 3}), phrase)
    assert_ends_with(refusal(portalock.Lock, path, {flags = 3}), phrase)
    assert_ends_with(refusal(portalock.lock, io.stdout, 3), phrase)
    assert_config_refuses('lock "a" { filename = "/tmp/a", flags = 3 }', phrase)

    phrase = core.rule_problem("bounded_maximum", 10001)
    assert.are.equal("must be an integer within 1.." .. core.BOUNDED_MAXIMUM, phrase)
    assert_ends_with(refusal(core.new_bounded, 10001, {}), phrase)
    assert_ends_with(refusal(portalock.BoundedSemaphore, 10001), phrase)
    assert_config_refuses('bounded_semaphore "w" { maximum = 10001 }', phrase)
    assert_cli_refuses({"run", "-j", "10001", "--dir", dir, "--", "true"}, phrase, 64)

    phrase = core.rule_problem("semaphore_value", core.SEM_VALUE_MAX + 1)
    assert_ends_with(refusal(portalock.Semaphore, core.SEM_VALUE_MAX + 1), phrase)
    assert_config_refuses('semaphore "s" { value = 2^31 }', phrase)
    -- (999: no octal digits, so no hint on how to write octal after the rule's words)
    phrase = core.rule_problem("semaphore_perm", 999)
    assert_ends_with(refusal(portalock.Semaphore, 1, {name = "rules", perm = 999}), phrase)
    assert_config_refuses('semaphore "s" { perm = 999 }', phrase)
    phrase = core.rule_problem("semaphore_release", 0)
    local sem = portalock.Semaphore(1, {name = "rules_n"})
    assert_ends_with(refusal(sem.release, sem, 0), phrase)
  end)

  it("modes and the exclusive-only kinds: C, the constructors, the config", function()
    local path = dir .. "/m.lock"
    local phrase = core.lock_mode_problem("w", portalock.LOCK_SH, "flock")
    assert.is_truthy(phrase:find("LOCK_EX", 1, true), phrase)
    assert_ends_with(refusal(core.new_lock, "lock", path, {mode = "w", flags = portalock.LOCK_SH}), phrase)
    assert_ends_with(refusal(portalock.Lock, path, {mode = "w", flags = portalock.LOCK_SH}), phrase)
    assert_config_refuses('lock "a" { filename = "/tmp/a", mode = "w", flags = 1 }', phrase)
    phrase = core.lock_mode_problem("a", portalock.LOCK_SH, "ofd")
    assert_ends_with(refusal(portalock.RLock, path, {flags = portalock.LOCK_SH, backend = "ofd"}), phrase)
    phrase = core.lock_mode_problem("x")
    assert_ends_with(refusal(core.new_lock, "lock", path, {mode = "x"}), phrase)
    assert_ends_with(refusal(portalock.Lock, path, {mode = "x"}), phrase)
    phrase = core.rule_problem("exclusive_flags", portalock.LOCK_SH)
    assert_ends_with(refusal(core.new_lock, "pidfile", path, {flags = portalock.LOCK_SH}), phrase)
    assert_ends_with(refusal(portalock.PidFileLock, path, {flags = portalock.LOCK_SH}), phrase)
    assert_ends_with(refusal(portalock.TemporaryFileLock, path, {flags = portalock.LOCK_SH}), phrase)
    assert_config_refuses('temporary_lock "t" { filename = "/tmp/t", flags = 1 }', phrase)
  end)

  it("semaphore names: C, the constructor, unlink and the config", function()
    local phrase = core.semaphore_name_problem("a/b")
    assert.are.equal("must not contain '/'", phrase)
    assert_ends_with(refusal(core.new_semaphore, "a/b", 1), phrase)
    assert_ends_with(refusal(portalock.Semaphore, 1, {name = "a/b"}), phrase)
    assert_ends_with(refusal(portalock.Semaphore.unlink, "a/b"), phrase)
    assert_config_refuses('semaphore "s" { name = "a/b" }', phrase)
    local long = ("n"):rep(core.SEMAPHORE_NAME_MAX + 1)
    phrase = core.semaphore_name_problem(long)
    assert.is_truthy(phrase:find(tostring(core.SEMAPHORE_NAME_MAX), 1, true), phrase)
    assert_ends_with(refusal(core.new_semaphore, long, 1), phrase)
    assert_ends_with(refusal(portalock.Semaphore, 1, {name = long}), phrase)
    assert.is_nil(core.semaphore_name_problem(long:sub(2)))
  end)

  it("the Lock's defaults and backend names are the core's", function()
    assert.are.same({"flock", "ofd", "posix"}, core.BACKENDS)
    assert.are.equal("a", core.DEFAULT_MODE)
    assert.are.equal(portalock.LOCK_EX + portalock.LOCK_NB, core.DEFAULT_FLAGS)
    assert.are.equal("flock", core.DEFAULT_BACKEND)
    local message = refusal(portalock.Lock, dir .. "/b.lock", {backend = "nfs"})
    for _, name in ipairs(core.BACKENDS) do
      assert.is_truthy(message:find('"' .. name .. '"', 1, true), message)
    end
  end)

  it("Lua checks only Lua types: a value of the wrong type never reaches the rule", function()
    assert.is_truthy(refusal(portalock.Lock, "x", {timeout = "1"}):find("must be a number", 1, true))
    assert.is_truthy(refusal(portalock.BoundedSemaphore, "3"):find("must be a number", 1, true))
    assert.is_truthy(refusal(portalock.Semaphore, 1, {name = 5}):find("must be a string", 1, true))
    assert.is_truthy(refusal(portalock.Semaphore, 1, {name = "a\0b"}):find("NUL", 1, true))
  end)
end)
