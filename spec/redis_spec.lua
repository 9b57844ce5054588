local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local redis_fixture = require "spec.support.redis_fixture"

-- What constructing a RedisLock and a RedisSemaphore raises in a child that first runs
-- `prelude` (a global `ngx`, or a core without Redis): the child's output and exit status.
local function construction_errors(prelude)
  return helper.capture(helper.lua_command(prelude .. [[
    local portalock = require "portalock"
    for _, make in ipairs({function() return portalock.RedisLock("x") end,
                           function() return portalock.RedisSemaphore("x", 3) end}) do
      local ok, err = pcall(make)
      assert(not ok, "constructed")
      io.write(err, "\n")
    end]]))
end

describe("RedisLock in a build without hiredis", function()
  it("says so at construction, naming libhiredis-dev", function()
    -- as a build without PORTALOCK_HAVE_REDIS
    local out, status = construction_errors('require("portalock.core").redis_session = nil\n')
    assert.are.equal(0, status, out)
    assert.matches("RedisLock: portalock was built without Redis support.-libhiredis%-dev", out)
    assert.matches("RedisSemaphore: portalock was built without Redis support.-libhiredis%-dev", out)
  end)
end)

local missing = redis_fixture.missing()
if missing then
  describe("RedisLock", function() pending(missing) end)
  return
end

describe("RedisLock", function()
  local fixture = redis_fixture.new("spec")
  setup(function() fixture:start() end)
  teardown(function() fixture:close() end)

  local function fresh(prefix) return fixture:fresh(prefix) end
  local function lock(name, opts) return fixture:lock(name, opts) end
  local function semaphore(name, maximum, opts) return fixture:semaphore(name, maximum, opts) end
  local function hold_elsewhere(name, maximum) return fixture:hold_elsewhere(name, maximum) end
  local let_go, timed = redis_fixture.let_go, redis_fixture.timed

  describe("acquire and release", function()
    it("returns the object with a token, and check() follows the grant", function()
      local l = lock(fresh())
      assert.is_nil(l.token)
      local held, reason = l:check()
      assert.is_false(held)
      assert.are.equal("not held", reason)
      local ok, err = l:ensure()
      assert.is_nil(ok)
      assert.are.equal("LockException", err.kind)
      assert.are.equal(l, assert(l:acquire()))
      assert.matches("^[1-9]%d*$", l.token)
      assert.is_true(l:check())
      assert.is_true(l:ensure())
      assert.is_true(l:release())
      assert.is_nil(l.token)
      held, reason = l:check()
      assert.is_false(held)
      assert.are.equal("not held", reason)
      assert.is_true(l:release()) -- a no-op
    end)

    -- Tokens are the server's clock in microseconds (or more): 5.1 and LuaJIT numbers would
    -- print them as "1.7966229997446e+15", and lose digits past 2^53.
    it("gives tokens as decimal strings on every Lua version, exact past 2^53", function()
      local l = lock(fresh())
      assert(l:acquire())
      assert.are.equal("string", type(l.token))
      assert.matches("^[1-9]%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d+$", l.token) -- >= 16 digits: µs
      assert.are.equal(l.token, tostring(l.token))
      l:release()
      -- a fence past 2^53 (9007199254740993 is no double) comes back digit for digit
      local name = fresh()
      local out, code = fixture.server:cli("SET", "portalock:{" .. name .. "}:fence", "9007199254740993")
      assert.are.equal(0, code, out)
      local big = lock(name)
      assert(big:acquire())
      assert.are.equal("9007199254740994", big.token)
      assert.is_true(big:fenced_write(name .. ":data", "v"))
      assert.are.equal("9007199254740994\n", fixture.server:cli("HGET", name .. ":data", "token"))
      big:release()
    end)

    it("gives strictly increasing tokens per name, across objects", function()
      fixture:assert_tokens_increase(fresh())
    end)

    it("has the read-only fields of portalocker's RedisLock and the defaults of Lock", function()
      local l = lock(fresh("fields"))
      assert.are.equal(l.channel, l.name)
      assert.are.equal(core.DEFAULT_TIMEOUT, l.timeout)
      assert.are.equal(core.DEFAULT_CHECK_INTERVAL, l.check_interval)
      assert.is_false(l.fail_when_locked)
      assert.has_error(function() l.timeout = 1 end)
      assert.matches("^portalock%.RedisLock%('fields%-.*'%): not held$", tostring(l))
    end)

    it("refuses a second acquire of a held object", function()
      local l = lock(fresh())
      assert(l:acquire())
      local ok, message = pcall(l.acquire, l)
      assert.is_false(ok)
      assert.matches("already holds its grant", message)
      l:release()
    end)

    it("subscribes to the channel `name` for portalocker unless visible = false", function()
      local function numsub(name)
        local out = fixture.server:cli("PUBSUB", "NUMSUB", name)
        return tonumber(out:match("\n(%d+)"))
      end
      local name = fresh()
      local shown, hidden = lock(name), lock(name .. "-hidden", {visible = false})
      assert(shown:acquire())
      assert(hidden:acquire())
      assert.are.equal(1, numsub(name))
      assert.are.equal(0, numsub(name .. "-hidden"))
      assert.is_true(shown.visible)
      assert.is_false(hidden.visible)
      shown:release()
      hidden:release()
      assert.are.equal(0, numsub(name))
    end)

    it("gives lost_fd() once a session is open", function()
      local l = lock(fresh())
      assert.is_nil(l:lost_fd())
      assert(l:acquire())
      assert.is_number(l:lost_fd())
      local now = core.monotonic()
      assert.are.equal("timeout", core.wait(l:lost_fd(), now, now)) -- nothing lost
      l:release()
    end)

    it("reports an unreachable server as a LockException", function()
      local l = portalock.RedisLock(fresh(), {redis = "redis://127.0.0.1:1/0", connect_timeout = 1})
      local obj, err = l:acquire(0)
      assert.is_nil(obj)
      assert.are.equal("LockException", err.kind)
      assert.is_true(err:is(portalock.LockException))
      assert.is_string(err.message)
    end)
  end)

  describe("contention between processes", function()
    it("times out with AlreadyLocked while another process holds it, then gets it", function()
      local name = fresh()
      local pid, their_token, release = hold_elsewhere(name)
      local l = lock(name)
      local waited, obj, err = timed(l.acquire, l, 0.5)
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      -- the timeout as given, though opening the session took some of it
      assert.are.equal("RedisLock '" .. name .. "' is locked: gave up after the timeout of 0.5 s",
        err.message)
      assert.is_true(waited >= 0.45, waited)
      assert.is_true(waited < 3, waited)
      -- fail_when_locked gives up at the first contention
      waited, obj, err = timed(l.acquire, l, 5, nil, true)
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(waited < 1, waited)
      -- a waiter gets it when the holder releases
      helper.write(release, "")
      assert.are.equal(l, assert(l:acquire(10)))
      assert.is_true(redis_fixture.token_above(l.token, their_token))
      l:release()
      assert(helper.wait_until(function() return not helper.alive(pid) end, 15))
    end)

    it("makes another process wait while this one holds it", function()
      local name = fresh()
      local l = lock(name)
      assert(l:acquire())
      local pid, ready, release = fixture:spawn_holder(name)
      helper.sleep(0.5)
      assert.is_false(helper.exists(ready))
      assert.is_true(l:release())
      assert(helper.wait_until(function() return helper.exists(ready) end, 10))
      assert.is_true(tonumber(helper.read(ready)) > 0)
      let_go(pid, release)
    end)
  end)

  describe("scoped holds", function()
    it("portalock.with holds while fn runs and releases after it, also on error", function()
      local l = lock(fresh())
      local seen = portalock.with(l, function(obj, extra)
        assert.are.equal(l, obj)
        assert.is_true(obj:check())
        return extra
      end, "result")
      assert.are.equal("result", seen)
      assert.is_false(l:check())
      local ok, err = pcall(portalock.with, l, function() error("boom", 0) end)
      assert.is_false(ok)
      assert.are.equal("boom", err)
      assert.is_false(l:check())
      assert(lock(l.name):acquire(0)):release()
    end)

    it("portalock.with raises the AlreadyLocked of a failed acquire", function()
      local name = fresh()
      local holder = lock(name)
      assert(holder:acquire())
      local ok, err = pcall(portalock.with, lock(name, {timeout = 0}), function() end)
      assert.is_false(ok)
      assert.are.equal("AlreadyLocked", err.kind)
      holder:release()
    end)

    if _VERSION == "Lua 5.4" then
      it("releases at the end of a <close> scope, also when an error unwinds it", function()
        local name = fresh()
        local scoped = assert(load([[
          local l, fail = ...
          local held <close> = assert(l:acquire())
          assert(held:check())
          if fail then error("boom") end
        ]]))
        scoped(lock(name))
        assert(lock(name):acquire(0)):release()
        assert.has_error(function() scoped(lock(name), true) end)
        assert(lock(name):acquire(0)):release()
      end)
    end
  end)

  describe("a lost session", function()
    it("is reported by check, ensure, release and lost_fd, and a new acquire opens a new one", function()
      local l = lock(fresh(), {ttl = 3})
      assert(l:acquire())
      local token = l.token
      local out, status = fixture.server:cli("CLIENT", "KILL", "TYPE", "pubsub")
      assert.are.equal(0, status, out)
      redis_fixture.assert_lost(l)
      -- the grant is free for others at once, and this object starts over on a new session
      assert.are.equal(l, assert(l:acquire(5)))
      assert.is_true(redis_fixture.token_above(l.token, token))
      assert.is_true(l:check())
      l:release()
    end)
  end)

  describe("status", function()
    it("names each holder's session and token, the maximum and the waiters, changing nothing",
      function()
      local name = fresh("status")
      local asker = semaphore(name, 2)
      assert.are.same({holders = {}, waiting = 0, foreign = 0}, assert(asker:status()))
      local mine = semaphore(name, 2)
      assert(mine:acquire())
      local pid, their_token, release = hold_elsewhere(name, 2)
      local st = assert(asker:status())
      assert.are.equal(2, st.maximum)
      assert.are.same({mine.token, their_token}, {st.holders[1].token, st.holders[2].token})
      assert.matches("^%x+$", st.holders[1].session)
      assert.are_not.equal(st.holders[1].session, st.holders[2].session)
      assert.is_true(st.holders[1].lease > 0 and st.holders[1].lease <= 30)
      mine:release()
      let_go(pid, release)
      assert.are.same({}, assert(asker:status()).holders)
      local unreachable = portalock.RedisLock(name, {redis = "redis://127.0.0.1:1/0"})
      local none, err = unreachable:status()
      assert.is_nil(none)
      assert.are.equal("LockException", err.kind)
    end)
  end)

  describe("RedisSemaphore", function()
    it("admits `maximum` holders and refuses the next until one releases", function()
      local name = fresh("sem")
      local holders = {}
      for i = 1, 3 do
        holders[i] = semaphore(name, 3)
        assert(holders[i]:acquire(0))
      end
      local fourth = semaphore(name, 3)
      local obj, err = fourth:acquire(0.3)
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(holders[2]:release())
      assert(fourth:acquire(5))
      -- and a fourth holder in another process waits for a permit too
      local pid, ready, release = fixture:spawn_holder(name, 3)
      helper.sleep(0.5)
      assert.is_false(helper.exists(ready))
      assert.is_true(holders[1]:release())
      assert(helper.wait_until(function() return helper.exists(ready) end, 10))
      let_go(pid, release)
      holders[3]:release()
      fourth:release()
      assert.are.equal(3, fourth.maximum)
    end)

    it("raises when the maximum differs from the one stored with the name", function()
      local name = fresh("sem")
      local three = semaphore(name, 3)
      assert(three:acquire())
      local ok, message = pcall(function() return semaphore(name, 4):acquire(0) end)
      assert.is_false(ok)
      assert.matches("maximum", tostring(message))
      three:release()
    end)

    it("takes another maximum once nobody holds or waits, also after a holder was killed", function()
      local name = fresh("sem")
      local three = semaphore(name, 3)
      assert(three:acquire())
      three:release()
      -- the maximum's key outlives its holders (up to 2 ttl): it binds nobody now
      local four = semaphore(name, 4)
      assert.are.equal(four, assert(four:acquire(0)))
      four:release()
      local pid = hold_elsewhere(name, 2)
      local ok, message = pcall(function() return semaphore(name, 5):acquire(0) end)
      assert.is_false(ok) -- while another process holds, its maximum binds
      assert.matches("in use with maximum 2", tostring(message))
      helper.kill(pid, "KILL")
      assert(helper.wait_until(function() return not helper.alive(pid) end, 5))
      local five = semaphore(name, 5)
      -- (as soon as the server has seen the dead holder's connection close: not after 2 ttl)
      assert.is_true(helper.wait_until(function()
        local acquired, got = pcall(five.acquire, five, 0)
        return acquired and got == five
      end, 5))
      five:release()
    end)
  end)

  describe("fencing", function()
    it("rejects a write with a token older than the newest written", function()
      local name = fresh("fence")
      local l = lock(name)
      assert(l:acquire())
      local key = name .. ":data"
      assert.is_true(l:fenced_write(key, "first"))
      local old = l.token
      l:release()
      assert(l:acquire())
      assert.is_true(l:fenced_write(key, "second"))
      l:release()
      -- the stale holder's token, through the session the core binding gives
      local session = assert(core.redis_session({url = fixture.url}))
      assert.is_false(session:fenced_write(key, old, "stale"))
      local out = fixture.server:cli("HGET", key, "value")
      assert.are.equal("second\n", out)
      session:close()
      local written, err = l:fenced_write(key, "unheld")
      assert.is_nil(written)
      assert.are.equal("LockException", err.kind)
    end)
  end)

  describe("after fork", function()
    it("leaves the child unable to release or prolong the parent's grant", function()
      local name = fresh("fork")
      fixture:assert_fork_leaves_grant(name, function(l)
        local held = l:check()
        l:release()
        local again, err = lock(name):acquire(0)
        return not held and again == nil and err.kind == "AlreadyLocked"
      end)
    end)
  end)

  describe("sessions", function()
    local testhelper = require "portalock_testhelper"

    it("are shared by the objects of one process and settings, and closed once unused", function()
      collectgarbage()
      collectgarbage()
      local before = testhelper.fd_count()
      local a, b = lock(fresh()), semaphore(fresh("sem"), 2)
      local other = lock(fresh(), {ttl = 7}) -- other settings: another session
      for _, obj in ipairs({a, b, other}) do
        assert(obj:acquire())
      end
      assert.are.equal(a:lost_fd(), b:lost_fd())
      assert.are_not.equal(a:lost_fd(), other:lost_fd())
      assert.is_true(testhelper.fd_count() > before)
      for _, obj in ipairs({a, b, other}) do
        assert(obj:release())
      end
      a, b, other = nil, nil, nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.are.equal(before, testhelper.fd_count())
    end)

    it("close their handles when closed: a handle then raises, and collection is safe", function()
      local session = assert(core.redis_session({url = fixture.url}))
      local h = core.redis_lock(session, fresh())
      local acq = h:begin(1, 0.1, false)
      assert.are.equal("acquired", acq:step())
      assert.are.equal("held", tostring(h):match("%((.-)%)$"))
      session:close()
      assert.matches("freed", tostring(h))
      assert.has_error(function() h:check() end)
      assert.has_error(function() acq:step() end)
      session:close() -- twice is a no-op
      h, acq, session = nil, nil, nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)
  end)

  describe("an ACL user with only the README's rights", function()
    it("acquires, waits, renews, releases and fences", function()
      local opts = {redis = fixture:acl_user()}
      local name = fresh("acl")
      local a, b = portalock.RedisLock(name, opts), portalock.RedisLock(name, opts)
      assert(a:acquire())
      local obj, err = b:acquire(0.2)
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(a:ensure())
      assert.is_true(a:fenced_write("portalock:acl-fenced", "value"))
      assert.is_true(a:release())
      assert(b:acquire(1))
      assert.is_true(b:release())
      local sem = portalock.RedisSemaphore(name .. "-sem", 2, opts)
      assert(sem:acquire(1))
      assert.are.equal(1, #assert(sem:status()).holders)
      -- another maximum for a name in use (the grant script looks for other waiters)
      local ok, message = pcall(function() return portalock.RedisSemaphore(name .. "-sem", 3, opts):acquire(0) end)
      assert.is_false(ok)
      assert.matches("in use with maximum 2", message)
      assert.is_true(sem:release())
      -- and the rights are needed: a user without EVALSHA cannot open a session
      local out, status = fixture.server:cli("ACL", "SETUSER", "portalock", "-evalsha")
      assert.are.equal(0, status, out)
      obj, err = portalock.RedisLock(name, {redis = opts.redis, ttl = 7}):acquire(0)
      assert.is_nil(obj)
      assert.are.equal("LockException", err.kind)
      assert.matches("evalsha", err.message:lower())
    end)
  end)

  describe("inside nginx", function()
    -- What they do there, in a real nginx: spec/nginx_redis_spec.lua. Inside nginx (an ngx
    -- global), portalock.nginx loads its cross-worker board through LuaJIT's ffi, which plain
    -- Lua 5.1-5.4 lack: the pretended nginx below needs LuaJIT.
    if not pcall(require, "ffi") then
      pending("LuaJIT only: portalock.nginx's board needs the ffi module inside nginx")
      return
    end
    it("are made with cosockets for their I/O, never the blocking session", function()
      local out, status = helper.capture(helper.lua_command([[
        ngx = {get_phase = function() return "content" end}
        local portalock = require "portalock"
        for _, obj in ipairs({portalock.RedisLock("x"), portalock.RedisSemaphore("x", 3)}) do
          local ok, err = pcall(obj.lost_fd, obj)
          assert(not ok)
          io.write(tostring(obj), " | ", err, "\n")
        end]]))
      assert.are.equal(0, status, out)
      assert.matches("portalock.RedisLock%('x'%): not held | .*lost_fd: not available inside nginx",
        out)
      assert.matches("portalock.RedisSemaphore%('x', 3%): not held | .*lost_fd: not available "
        .. "inside nginx", out)
    end)
  end)

  -- One wording for every connection failure: what happened, naming the server.
  describe("connection messages", function()
    local function refusal(opts)
      local obj, err = lock(fresh("conn"), opts):acquire(0)
      assert.is_nil(obj)
      assert.are.equal("LockException", err.kind)
      return err.message
    end

    it("say that a host name could not be resolved, naming it", function()
      local message = refusal({redis = "redis://no-such-host.invalid:6390/0"})
      assert.matches('^cannot connect to Redis at no%-such%-host%.invalid:6390: the host name '
        .. '"no%-such%-host%.invalid" could not be resolved %(.+%)$', message)
    end)

    it("name the server and the command it refused (SELECT, AUTH, CLIENT SETNAME)", function()
      local where = "Redis at 127.0.0.1:" .. fixture.server.port
      assert.are.equal(where .. " refused SELECT: ERR DB index is out of range",
        refusal({redis = fixture.url:gsub("/0$", "/99")}))
      assert.matches("^" .. where:gsub("%.", "%%.") .. " refused AUTH: WRONGPASS ",
        refusal({redis = {port = fixture.server.port, username = "nobody", password = "wrong"}}))
      local guarded = redis_fixture.new("guarded")
      guarded:start()
      finally(function() guarded:close() end)
      local out, code = guarded.server:cli("CONFIG", "SET", "requirepass", "pw")
      assert.are.equal(0, code, out)
      assert.are.equal("Redis at 127.0.0.1:" .. guarded.server.port .. " refused CLIENT SETNAME: "
        .. "NOAUTH Authentication required. (give the password in the URL, "
        .. "redis://:password@host)", refusal({redis = guarded.url}))
    end)

    it("say that a waiter's connection was lost while it waited, when its server dies", function()
      local doomed = redis_fixture.new("doomed")
      doomed:start()
      finally(function() doomed:close() end)
      local name = doomed:fresh()
      doomed:hold_elsewhere(name)
      local waiter = doomed:lock(name)
      assert.is_nil(waiter:acquire(0)) -- (its session is open: the kill comes while it waits)
      helper.spawn("(sleep 0.5; kill -KILL " .. doomed.server.pid .. ")")
      local obj, err = waiter:acquire(10)
      assert.is_nil(obj)
      assert.are.equal("LockException", err.kind)
      -- (a new session then fails as the dying server ends its sockets: refused or reset)
      local where = ("Redis at 127%%.0%%.0%%.1:%d"):format(doomed.server.port)
      assert.matches("^the connection to " .. where .. " was lost while waiting for '"
        .. name:gsub("%-", "%%-") .. "' %(.-%); reconnecting: .*" .. where, err.message)
    end)
  end)

  describe("bad input", function()
    local function raises(fragments, fn)
      local ok, message = pcall(fn)
      assert.is_false(ok, "no error raised")
      assert.are.equal("string", type(message))
      for _, fragment in ipairs(fragments) do
        assert.is_truthy(message:find(fragment, 1, true), "'" .. fragment .. "' not in: " .. message)
      end
    end

    local cases = {
      {"a channel that is not a string", {"bad argument 'channel' to 'RedisLock' (42)", "string"},
        function() portalock.RedisLock(42) end},
      {"an empty channel", {"bad argument 'channel' to 'RedisLock' (\"\")", "empty"},
        function() portalock.RedisLock("") end},
      {"a maximum of 0", {"bad argument 'maximum' to 'RedisSemaphore' (0)", "integer"},
        function() portalock.RedisSemaphore("s", 0) end},
      {"a fractional maximum", {"bad argument 'maximum' to 'RedisSemaphore' (1.5)"},
        function() portalock.RedisSemaphore("s", 1.5) end},
      {"a negative ttl", {"bad argument 'ttl' to 'RedisLock' (-1)", "must be a positive number of seconds"},
        function() portalock.RedisLock("x", {ttl = -1}) end},
      {"an infinite ttl", {"bad argument 'ttl' to 'RedisLock' (inf)", "at most a year"},
        function() portalock.RedisLock("x", {ttl = math.huge}) end},
      {"a ttl of the wrong type", {"bad argument 'ttl' to 'RedisSemaphore' (\"30\")"},
        function() portalock.RedisSemaphore("x", 2, {ttl = "30"}) end},
      {"a negative timeout", {"bad argument 'timeout' to 'RedisLock' (-1)", ">= 0"},
        function() portalock.RedisLock("x", {timeout = -1}) end},
      {"a negative check_interval", {"bad argument 'check_interval' to 'RedisLock' (-1)"},
        function() portalock.RedisLock("x", {check_interval = -1}) end},
      {"fail_when_locked that is not a boolean", {"bad argument 'fail_when_locked' to 'RedisLock' (1)"},
        function() portalock.RedisLock("x", {fail_when_locked = 1}) end},
      {"a zero connect_timeout", {"bad argument 'connect_timeout' to 'RedisLock' (0)"},
        function() portalock.RedisLock("x", {connect_timeout = 0}) end},
      {"a NaN command_timeout", {"bad argument 'command_timeout' to 'RedisLock' (nan)"},
        function() portalock.RedisLock("x", {command_timeout = 0 / 0}) end},
      {"a negative thread_sleep_time", {"bad argument 'thread_sleep_time' to 'RedisLock' (-1)"},
        function() portalock.RedisLock("x", {thread_sleep_time = -1}) end},
      {"a negative unavailable_timeout", {"bad argument 'unavailable_timeout' to 'RedisLock' (-1)"},
        function() portalock.RedisLock("x", {unavailable_timeout = -1}) end},
      {"unavailable_timeout beside command_timeout", {"'unavailable_timeout'", "command_timeout"},
        function() portalock.RedisLock("x", {unavailable_timeout = 1, command_timeout = 2}) end},
      {"an unknown option", {"'RedisLock'", "unknown option", '"tll"'},
        function() portalock.RedisLock("x", {tll = 3}) end},
      {"options that are not a table", {"bad argument 'opts' to 'RedisLock' (5)"},
        function() portalock.RedisLock("x", 5) end},
      {"a URL of another scheme", {"bad argument 'redis' to 'RedisLock' (\"http://127.0.0.1/\")"},
        function() portalock.RedisLock("x", {redis = "http://127.0.0.1/"}) end},
      {"a URL with a bad db, its password masked", {"bad argument 'redis' to 'RedisLock' "
        .. "(\"redis://u:***@127.0.0.1:6379/x\")", "db"},
        function() portalock.RedisLock("x", {redis = "redis://u:secret@127.0.0.1:6379/x"}) end},
      {"a password with a NUL, not quoted", {"bad argument 'password' to 'RedisLock' (***)", "NUL"},
        function() portalock.RedisLock("x", {redis = {password = "se\0cret"}}) end},
      {"a redis option of the wrong type", {"bad argument 'redis' to 'RedisLock' (true)", "URL"},
        function() portalock.RedisLock("x", {redis = true}) end},
      {"a port out of range", {"bad argument 'port' to 'RedisLock' (70000)", "within 1..65535"},
        function() portalock.RedisLock("x", {redis = {port = 70000}}) end},
      {"a negative db", {"bad argument 'db' to 'RedisLock' (-1)"},
        function() portalock.RedisLock("x", {redis = {db = -1}}) end},
      {"an unknown connection field", {"'RedisLock'", "unknown option", '"hots"'},
        function() portalock.RedisLock("x", {redis = {hots = "h"}}) end},
      {"a negative timeout to acquire", {"bad argument 'timeout' to 'acquire' (-1)"},
        function() portalock.RedisLock("x"):acquire(-1) end},
      {"fail_when_locked to acquire that is not a boolean", {"bad argument 'fail_when_locked' to 'acquire' (\"yes\")"},
        function() portalock.RedisLock("x"):acquire(1, 0.1, "yes") end},
      {"visible that is not a boolean", {"bad argument 'visible' to 'RedisLock' (0)", "boolean"},
        function() portalock.RedisLock("x", {visible = 0}) end},
      {"visible for a semaphore", {"'RedisSemaphore'", "unknown option", '"visible"'},
        function() portalock.RedisSemaphore("x", 2, {visible = false}) end},
      {"a method called with a dot", {"bad argument 'self' to 'release'"},
        function() portalock.RedisLock("x").release() end},
      {"a fenced_write value that is not a string", {"bad argument 'value' to 'fenced_write' (1)"},
        function() portalock.RedisLock("x"):fenced_write("k", 1) end},
    }
    for _, case in ipairs(cases) do
      it("raises for " .. case[1], function()
        raises(case[2], case[3])
      end)
    end

    -- A refusal carries no position inside portalock ("wait.lua:158:"): it is raised at the
    -- caller's line, or where only the server can tell (another maximum) with none.
    it("raises for a name too long at construction, at the caller's line, naming the argument",
      function()
      local long = ("n"):rep(core.REDIS_NAME_MAX + 1)
      for _, make in ipairs({
        {"channel", "RedisLock", function() local l = portalock.RedisLock(long) return l end},
        {"name", "RedisSemaphore", function() local l = portalock.RedisSemaphore(long, 2) return l end},
      }) do
        local ok, message = pcall(make[3])
        assert.is_false(ok)
        assert.matches("^spec/redis_spec%.lua:%d+: bad argument '" .. make[1] .. "' to '" .. make[2]
          .. "' %(\"nnn+\"%.%.%. %(1025 bytes%)%): the " .. make[2] .. "'s name must be at most 1024 "
          .. "bytes$", message)
      end
      local just = portalock.RedisLock(("n"):rep(core.REDIS_NAME_MAX), {redis = fixture.url})
      assert.are.equal(just, assert(just:acquire(0)))
      just:release()
    end)

    it("raises another maximum for a name in use without a position inside portalock", function()
      local name = fresh("sem")
      local two = semaphore(name, 2)
      assert(two:acquire())
      local ok, message = pcall(function() return semaphore(name, 3):acquire(0) end)
      two:release()
      assert.is_false(ok)
      assert.are.equal("bad argument 'maximum' (3): '" .. name .. "' is in use with maximum 2 "
        .. "(every process that holds or waits for it gives that; another maximum is taken once "
        .. "none does)", message)
    end)

    it("never quotes a password", function()
      local ok, message = pcall(portalock.RedisLock, "x", {redis = "redis://u:secret@127.0.0.1:6379/x"})
      assert.is_false(ok)
      assert.is_nil(message:find("secret", 1, true), message)
      ok, message = pcall(portalock.RedisLock, "x", {redis = {password = "se\0cret"}})
      assert.is_false(ok)
      assert.is_nil(message:find("se", 1, true) and message:find("cret", 1, true), message)
    end)

    it("raises in the core binding for a bad token or a NUL in a name", function()
      local session = assert(core.redis_session({url = fixture.url}))
      local bad_token = "token must be a decimal string of a token above 0 (as .token gives it)"
      raises({bad_token, "got 5"}, function() session:fenced_write("k", 5, "v") end)
      raises({bad_token, 'got "-1"'}, function() session:fenced_write("k", "-1", "v") end)
      raises({bad_token, 'got "0"'}, function() session:fenced_write("k", "0", "v") end)
      raises({bad_token, 'got "18446744073709551616"'}, -- 2^64
        function() session:fenced_write("k", "18446744073709551616", "v") end)
      raises({"must not contain NUL bytes"}, function() core.redis_lock(session, "a\0b") end)
      raises({"bad argument 'url'"}, function() core.redis_session({url = "http://x/"}) end)
      -- the binding checks types; the ranges are the core's
      raises({"bad option 'port' (1.5): must be an integer"}, function() core.redis_session({port = 1.5}) end)
      raises({"bad argument 'port' (70000)", "1..65535"}, function() core.redis_session({port = 70000}) end)
      raises({"bad argument 'db' (-1)"}, function() core.redis_session({db = -1}) end)
      raises({"bad argument 'ttl' (0)"}, function() core.redis_session({ttl = 0}) end)
      session:close()
      raises({"redis session already closed"}, function() session:fd() end)
    end)
  end)
end)
