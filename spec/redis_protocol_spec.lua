-- The Redis protocol that portalock.core gives a transport written in Lua (the cosockets of
-- portalock.redis_cosocket inside nginx): the bytes of each command, the reader of replies,
-- what each reply means, and the remote acquisition whose policy and messages are the
-- engine's. No server and no nginx: the replies are written here as the server sends them.
local core = require "portalock.core"

-- RESP of a command, written out here (the module's come from hiredis).
local function resp(...)
  local parts = {string.format("*%d\r\n", select("#", ...))}
  for _, arg in ipairs({...}) do
    parts[#parts + 1] = "$" .. #arg .. "\r\n" .. arg .. "\r\n" -- (5.1's %s stops at a NUL)
  end
  return table.concat(parts)
end

-- The one reply that `bytes` holds.
local function reply_of(bytes)
  local reader = core.redis_reader()
  reader:feed(bytes)
  return assert(reader:next())
end

local KEYS = {"portalock:{jobs}:holders", "portalock:{jobs}:queue", "portalock:{jobs}:fence",
  "portalock:{jobs}:subscribers", "portalock:{jobs}:maximum"}

describe("the Redis protocol for a Lua transport #redis", function()
  if not core.redis_remote then
    pending("portalock.core was built without hiredis (libhiredis-dev)")
    return
  end

  it("builds each command as the C sessions send it", function()
    local lock = core.redis_remote("jobs", 1, true)
    local sem = core.redis_remote("jobs", 3, false)
    assert.are.equal(resp("EVALSHA", "sha", "5", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],
      "s:1", "s", "1", "30000", "jobs", "", "1"), lock:grant("sha", "s:1", "s", 30000, "", true))
    assert.are.equal(resp("EVALSHA", "sha", "5", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],
      "s:2", "s", "3", "500", "", "-", "0"), sem:grant("sha", "s:2", "s", 500, "-", false))
    assert.are.equal(resp("EVALSHA", "sha", "2", KEYS[1], KEYS[2], "s:1"), lock:release("sha", "s:1"))
    assert.are.equal(resp("EVALSHA", "sha", "3", KEYS[1], KEYS[5], KEYS[4], "900", "s:1"),
      lock:renew("sha", 900, "s:1"))
    assert.are.equal(resp("EVALSHA", "sha", "6", KEYS[1], KEYS[5], KEYS[4],
      "portalock:{b}:holders", "portalock:{b}:maximum", "portalock:{b}:subscribers", "900", "s:1",
      "t:1"), core.redis_renew("sha", 900, {lock, core.redis_remote("b", 2)}, {"s:1", "t:1"}))
    assert.are.equal(resp("ZREM", KEYS[2], "s:1"), lock:leave_queue("s:1"))
    assert.are.equal(resp("SUBSCRIBE", "s:1", "jobs"), lock:subscription("SUBSCRIBE", "s:1", true))
    assert.are.equal(resp("UNSUBSCRIBE", "s:1"), lock:subscription("UNSUBSCRIBE", "s:1", false))
    assert.are.equal(resp("SUBSCRIBE", "portalock:session:ab"),
      core.redis_subscription("SUBSCRIBE", "portalock:session:ab"))
    assert.are.equal(resp("EVALSHA", "sha", "1", "k", "12", "v\0w"),
      core.redis_fenced_write("sha", "k", "12", "v\0w"))
    -- a token past 2^53 stays exact: a decimal string, as .token gives it
    assert.are.equal(resp("EVALSHA", "sha", "1", "k", "18446744073709551615", "v"),
      core.redis_fenced_write("sha", "k", "18446744073709551615", "v"))
    assert.are.equal(resp("AUTH", "pw"), core.redis_auth(nil, "pw"))
    assert.are.equal(resp("AUTH", "me", "pw"), core.redis_auth("me", "pw"))
    assert.are.equal(resp("SELECT", "3"), core.redis_select(3))
    assert.are.equal(resp("CLIENT", "SETNAME", "portalock-0123456789abcdef-command"),
      core.redis_client_name("0123456789abcdef0123", "command"))
    for _, name in ipairs(core.REDIS_SCRIPTS) do
      local load = core.redis_script_load(name)
      assert.matches("^%*3\r\n%$6\r\nSCRIPT\r\n%$4\r\nLOAD\r\n%$%d+\r\n", load)
    end
    assert.are.same({"grant", "release", "renew", "fenced_write", "status"}, core.REDIS_SCRIPTS)
  end)

  it("reads replies that arrive in pieces, several at once, or malformed", function()
    local reader = core.redis_reader()
    reader:feed("*2\r\n:1\r")
    assert.is_nil(reader:next())
    reader:feed("\n:42\r\n:1\r\n")
    assert.are.same({"granted", "42"}, {reader:next():grant()})
    assert.is_true(reader:next():release())
    assert.is_nil(reader:next())
    reader:feed("%oops\r\n")
    local ok, problem = reader:next()
    assert.is_false(ok)
    assert.matches("^Redis protocol error: ", problem)
  end)

  it("says what each reply means, as protocol.c does", function()
    assert.are.same({"contended", 1, 0, "1700000000000001"},
      {reply_of("*4\r\n:0\r\n:1\r\n:0\r\n$16\r\n1700000000000001\r\n"):grant()})
    assert.are.same({"not_subscribed"}, {reply_of("*1\r\n:-1\r\n"):grant()})
    assert.are.same({"maximum_mismatch", 2}, {reply_of("*2\r\n:-2\r\n$1\r\n2\r\n"):grant()})
    local none, err = reply_of("-ERR nope\r\n"):grant()
    assert.is_nil(none)
    assert.are.same({kind = "LockException", message = "acquiring a Redis lock: the server answered: ERR nope"},
      {kind = err.kind, message = err.message})
    assert.is_false(reply_of(":0\r\n"):release())
    assert.is_false(reply_of(":0\r\n"):leave_queue())
    assert.is_true(reply_of(":1\r\n"):fenced_write())
    assert.are.same({true, false}, reply_of("*2\r\n:1\r\n:0\r\n"):renew(2))
    assert.is_nil(reply_of("*2\r\n:1\r\n:0\r\n"):renew(3))
    assert.are.same({"message", "s:1"}, {reply_of(resp("message", "s:1", "released")):push()})
    assert.are.same({"subscribe", "s:1"}, {reply_of("*3\r\n$9\r\nsubscribe\r\n$3\r\ns:1\r\n:1\r\n"):push()})
    assert.are.same({}, {reply_of(":1\r\n"):push()})
    assert.is_true(reply_of("-NOSCRIPT No matching script\r\n"):noscript())
    assert.is_false(reply_of("-ERR x\r\n"):noscript())
    local sha = string.rep("a", 40)
    assert.are.equal(sha, reply_of("$40\r\n" .. sha .. "\r\n"):script_load("Redis at h:1"))
    local _, refused = reply_of("-NOPERM x\r\n"):script_load("Redis at h:1")
    assert.are.equal("Redis at h:1 refused SCRIPT LOAD: NOPERM x", refused.message)
    assert.is_true(reply_of("+OK\r\n"):status("AUTH", "Redis at h:1"))
    _, refused = reply_of("-WRONGPASS x\r\n"):status("AUTH", "Redis at h:1")
    assert.are.equal("Redis at h:1 refused AUTH: WRONGPASS x", refused.message)
    _, refused = reply_of("-NOAUTH Authentication required.\r\n"):status("SELECT", "Redis at h:1")
    assert.are.equal("Redis at h:1 refused SELECT: NOAUTH Authentication required. (give the "
      .. "password in the URL, redis://:password@host)", refused.message)
    local status = string.rep("a", 40)
    assert.are.equal(resp("EVALSHA", status, "4", KEYS[1], KEYS[2], KEYS[4], KEYS[5], "jobs"),
      core.redis_remote("jobs", 1, true):status(status))
  end)

  it("leaves the wait's policy and messages to the core (a remote acquisition)", function()
    local lock = core.redis_remote("jobs", 1, true)
    local acq = lock:begin(0.2, 0.05, false)
    assert.has_error(function() acq:step() end,
      "'jobs': a remote acquisition's attempts are its caller's (portalock_step_held)")
    local status, fd, next_attempt = acq:held()
    assert.are.equal("sleep", status)
    assert.is_nil(fd)
    assert.is_true(next_attempt <= core.monotonic() + 0.05)
    core.wait(nil, core.monotonic() + 0.25, core.monotonic() + 0.25)
    local none, err = acq:held()
    assert.is_nil(none)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.are.equal("RedisLock 'jobs' is locked: gave up after the timeout of 0.2 s", err.message)
    none, err = core.redis_remote("seats", 3, false):begin(5, 0.1, true):held()
    assert.is_nil(none)
    assert.are.equal("RedisSemaphore 'seats' has all its 3 permits taken: gave up at the first "
      .. "contention (fail_when_locked)", err.message)
  end)

  it("words the grant's messages as lock.c does", function()
    local sem = core.redis_remote("seats", 2, false)
    assert.are.equal("bad argument 'maximum' (2): 'seats' is in use with maximum 5 (every process "
      .. "that holds or waits for it gives that; another maximum is taken once none does)",
      sem:mismatch(5))
    assert.are.equal("'seats' was lost before its release", sem:lost_before_release().message)
    assert.are.equal("'seats' is lost", sem:not_held("lost").message)
    assert.are.equal("LockException", sem:not_held("lost").kind)
    -- the server as connection.c names it, and the messages of session.c, lock.c, connection.c
    local where = core.redis_where({host = "127.0.0.1", port = 1})
    assert.are.equal("Redis at 127.0.0.1:1", where)
    assert.are.equal("Redis at 127.0.0.1:6379", core.redis_where({port = 0}))
    assert.are.equal("Redis at unix:/run/redis.sock", core.redis_where({path = "/run/redis.sock"}))
    assert.are.equal("the connection to Redis at 127.0.0.1:1 was lost (the lease ran out)",
      core.redis_lost_error(where, core.REDIS_LOSSES.lease).message)
    assert.are.equal("the connection to Redis at 127.0.0.1:1 was lost while waiting for 'seats' "
      .. "(the subscription connection ended)",
      core.redis_lost_error(where, core.REDIS_LOSSES.subscription_ended, "seats").message)
    assert.are.equal("Redis at 127.0.0.1:1 did not confirm a subscription in time "
      .. "(command_timeout)", core.redis_unconfirmed_error(where).message)
    assert.are.equal("cannot connect to Redis at 127.0.0.1:1: connection refused",
      core.redis_unreachable_error(where, "connection refused").message)
    assert.are.equal("Redis at 127.0.0.1:1 did not answer in time (command_timeout) while "
      .. "waiting for a reply", core.redis_broken_error(where, "waiting for a reply", "timeout").message)
    assert.are.equal("the connection to Redis at 127.0.0.1:1 was lost while sending: closed by the "
      .. "server", core.redis_broken_error(where, "sending", "closed").message)
    assert.are.equal("the connection to Redis at 127.0.0.1:1 was lost while reading a reply: "
      .. "connection reset by peer",
      core.redis_broken_error(where, "reading a reply", "connection reset by peer").message)
    assert.are.equal("the subscription connection ended", core.REDIS_LOSSES.subscription_ended)
  end)

  it("refuses bad input with the argument named", function()
    assert.has_error(function() core.redis_remote("", 1, true) end,
      "bad argument 'name' (\"\"): must be 1 to " .. core.REDIS_NAME_MAX .. " bytes")
    assert.has_error(function() core.redis_remote(string.rep("n", core.REDIS_NAME_MAX + 1), 1, true) end)
    assert.has_error(function() core.redis_remote("x", 0, false) end)
    -- 2^63 is above every long although LONG_MAX, as a double, rounds to it
    for _, maximum in ipairs({2 ^ 63, 2 ^ 64, 1.5, 0 / 0}) do
      local ok, err = pcall(core.redis_remote, "x", maximum, false)
      assert.is_false(ok, tostring(maximum))
      assert.matches("must be an integer in range %(got ", err)
    end
    assert.has_error(function() core.redis_remote("a\0b", 1, true) end)
    assert.has_error(function() core.redis_fenced_write("sha", "k", "0", "v") end)
    local ok, err = pcall(core.redis_fenced_write, "sha", "k", 12, "v")
    assert.is_false(ok)
    assert.matches("token must be a decimal string of a token above 0 %(as %.token gives it%)", err)
    assert.has_error(function() core.redis_script_load("nope") end)
    assert.has_error(function() core.redis_renew("sha", 900, {}, {}) end)
    assert.has_error(function() core.redis_renew("sha", 900, {"not a remote"}, {"s:1"}) end)
    assert.has_error(function() core.redis_remote("x", 1, true):subscription("PUBLISH", "c") end)
  end)
end)
