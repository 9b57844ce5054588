--- What the Redis specs share: why they cannot run here, a redis-server and a scratch directory
-- per describe block, names no other test uses, objects on that server, and holders in other
-- processes (spec/support/redis_hold.lua).
--
--   local fixture = redis_fixture.new("spec")
--   setup(function() fixture:start() end)
--   teardown(function() fixture:close() end)
local assert = require "luassert"
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local redis_server = require "spec.support.redis_server"
local testhelper = require "portalock_testhelper"

local redis_fixture = {}

-- How long a child may take to report that it holds, and to exit once let go.
local CHILD_SECONDS = 15
-- How long a holder holds at most when nobody lets it go.
local HOLD_SECONDS = 60

--- nil when the Redis specs can run, else why not (for pending()).
function redis_fixture.missing()
  if not core.redis_session then
    return "portalock.core was built without hiredis (libhiredis-dev)"
  end
  return redis_server.missing()
end

--- Waits until a child has written `ready`, the file it writes once it holds; else fails
-- naming the child (`who`) and quoting its log.
function redis_fixture.await_ready(ready, log, who)
  assert(helper.wait_until(function() return helper.exists(ready) end, CHILD_SECONDS),
    who .. " never got the grant: " .. tostring(helper.read(log)))
end

--- Tells a holder to release (writes its release file) and waits until it has exited.
function redis_fixture.let_go(pid, release)
  helper.write(release, "")
  assert(helper.wait_until(function() return not helper.alive(pid) end, CHILD_SECONDS))
end

--- Whether token `a` is newer (larger) than token `b`: decimal strings, as .token gives them,
-- compared as the numbers they are (by length, then digits), exact on every Lua version.
function redis_fixture.token_above(a, b)
  assert(type(a) == "string" and a:match("^[1-9]%d*$"), "not a token: " .. tostring(a))
  assert(type(b) == "string" and b:match("^[1-9]%d*$"), "not a token: " .. tostring(b))
  return #a > #b or (#a == #b and a > b)
end

--- The seconds fn(...) took, then its first two results.
function redis_fixture.timed(fn, ...)
  local started = core.monotonic()
  local a, b = fn(...)
  return core.monotonic() - started, a, b
end

--- Asserts that `l` loses its grant within 5 seconds, and that every way of asking says so:
-- check() is false with "lost", lost_fd() is readable, ensure() and release() (which never
-- raises) return a LockException.
function redis_fixture.assert_lost(l)
  assert.is_true(helper.wait_until(function() return not l:check() end, 5))
  local held, reason = l:check()
  assert.is_false(held)
  assert.are.equal("lost", reason)
  local now = core.monotonic()
  assert.are.equal("ready", core.wait(l:lost_fd(), now, now))
  local ok, err = l:ensure()
  assert.is_nil(ok)
  assert.are.equal("LockException", err.kind)
  ok, err = l:release()
  assert.is_nil(ok)
  assert.are.equal("LockException", err.kind)
end

local Fixture = {}
Fixture.__index = Fixture

--- A fixture whose names start with `prefix`; start() it in a setup, close() it in a teardown.
function redis_fixture.new(prefix)
  return setmetatable({prefix = prefix, serial = 0}, Fixture)
end

function Fixture:start()
  self.server = redis_server.start()
  self.url = self.server.url
  self.dir = helper.tmpdir()
end

function Fixture:close()
  if self.server then
    self.server:close()
  end
  if self.dir then
    helper.rmtree(self.dir)
  end
end

--- A name no other test uses (`prefix` replaces the fixture's).
function Fixture:fresh(prefix)
  self.serial = self.serial + 1
  return string.format("%s-%d-%d", prefix or self.prefix, core.getpid(), self.serial)
end

--- A RedisLock on the fixture's server unless opts.redis says otherwise.
function Fixture:lock(name, opts)
  opts = opts or {}
  opts.redis = opts.redis or self.url
  return portalock.RedisLock(name, opts)
end

--- A RedisSemaphore on the fixture's server unless opts.redis says otherwise.
function Fixture:semaphore(name, maximum, opts)
  opts = opts or {}
  opts.redis = opts.redis or self.url
  return portalock.RedisSemaphore(name, maximum, opts)
end

--- Asserts that `l` holds `name`: check() and ensure() say so, and another object's acquire
-- fails at once with AlreadyLocked.
function Fixture:assert_holds(l, name)
  assert.is_true(l:check())
  assert.is_true(l:ensure())
  local obj, err = self:lock(name):acquire(0)
  assert.is_nil(obj)
  assert.are.equal("AlreadyLocked", err.kind)
end

--- Acquires `name`, forks, and runs child(lock) in the child, which exits 0 when that returns
-- true (1 when it returns false or raises). Asserts that the child exited 0 and that this
-- process still holds (assert_holds), then releases.
function Fixture:assert_fork_leaves_grant(name, child)
  local l = self:lock(name)
  assert.is_truthy(l:acquire())
  local pid = testhelper.fork()
  if pid == 0 then
    local ok, passed = pcall(child, l)
    testhelper._exit(ok and passed and 0 or 1)
  end
  assert.are.equal(0, testhelper.waitpid(pid))
  self:assert_holds(l, name)
  assert.is_true(l:release())
end

--- Asserts that the grants of `name` carry strictly increasing tokens, across two objects that
-- take turns (three rounds).
function Fixture:assert_tokens_increase(name)
  local a, b = self:lock(name), self:lock(name)
  local last = "1"
  for _ = 1, 3 do
    for _, holder in ipairs({a, b}) do
      assert.is_truthy(holder:acquire())
      assert.is_true(redis_fixture.token_above(holder.token, last))
      last = holder.token
      assert.is_true(holder:release())
    end
  end
end

--- Makes the README's ACL user on the fixture's server (asserting that it exists there) and
-- returns its connection table (database 1) for opts.redis.
function Fixture:acl_user()
  local readme = assert(helper.read(helper.root .. "/README.md"))
  local rules = assert(readme:match("\nuser portalock ([^\n]+)\n"), "no ACL line in the README")
  local words = {"ACL", "SETUSER", "portalock"}
  for word in rules:gmatch("%S+") do
    words[#words + 1] = word
  end
  local out, status = self.server:cli((table.unpack or unpack)(words)) -- luacheck: compat
  assert.are.equal(0, status, out)
  assert.are.equal("OK\n", out)
  return {host = "127.0.0.1", port = self.server.port, db = 1, username = "portalock",
    password = rules:match(">(%S+)")}
end

--- Starts a holder of `name` (a lock, or a semaphore of `maximum` permits) in another process
-- without waiting for it: its pid, the file it writes its token into once it holds, the file
-- that tells it to release, and its log.
function Fixture:spawn_holder(name, maximum)
  local base = self.dir .. "/" .. self:fresh("holder")
  local ready, release, log = base .. ".ready", base .. ".release", base .. ".log"
  local pid = helper.spawn(helper.script_command("redis_hold", self.url, name,
    tostring(maximum or "lock"), ready, release, tostring(HOLD_SECONDS)), log)
  return pid, ready, release, log
end

--- A holder of `name` in another process that holds by the time this returns: its pid, its
-- token and the file that tells it to release (see redis_fixture.let_go).
function Fixture:hold_elsewhere(name, maximum)
  local pid, ready, release, log = self:spawn_holder(name, maximum)
  redis_fixture.await_ready(ready, log, "the holder")
  return pid, helper.read(ready), release
end

return redis_fixture
