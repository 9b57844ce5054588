-- Ported from portalocker's portalocker_tests/test_redis.py: the cases of 4.1 (the repository's
-- newest snapshot) and the 4.3 cases that describe behaviour portalock shares (loss detection,
-- exclusion soaks, fencing, a half-open link). Each `it` names the upstream test it re-expresses.
-- Upstream runs every case against fakeredis and a live server; here there is only a live
-- redis-server on loopback (spec/support/redis_server.lua), and what upstream stages with
-- threads and monkeypatching happens to real processes and real connections: a holder is
-- SIGKILLed or SIGSTOPped, a subscription is closed by the server (CLIENT KILL from the test, as
-- upstream's live cases do), a link goes half-open in a loopback proxy. The upstream fixture
-- patches the library defaults to timeout 0.0001 and check_interval 0.0005; portalock has no
-- library-wide defaults, so those objects are constructed with these values. README
-- "Differences from portalocker" lists what is not ported and why.
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local redis_fixture = require "spec.support.redis_fixture"

local missing = redis_fixture.missing()
if missing then
  describe("portalocker's tests: test_redis", function() pending(missing) end)
  return
end

local checker = require "spec.support.redis_checker"
local tcp_proxy = require "spec.support.tcp_proxy"

local PATCHED_TIMEOUT, PATCHED_CHECK_INTERVAL = 0.0001, 0.0005

-- What every child below starts with: sleep, wait for a file, publish a file atomically.
local CHILD_PRELUDE = [[
local portalock = require "portalock"
local core = require "portalock.core"
local function sleep(seconds)
  local wake = core.monotonic() + seconds
  core.wait(nil, wake, wake)
end
local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end
local function await(path)
  local deadline = core.monotonic() + 60
  while not exists(path) do
    if core.monotonic() > deadline then os.exit(3) end
    sleep(0.002)
  end
end
local function put(path, text)
  local f = assert(io.open(path .. ".tmp", "w"))
  f:write(text)
  f:close()
  assert(os.rename(path .. ".tmp", path))
end
]]

-- One of two non-blocking contenders: in each round it waits for go.N, tries once
-- (fail_when_locked), reports "won" or the error's kind in WHO.N, and the winner holds until
-- release.N; then it reports WHO.N.done.
local CONTENDER = CHILD_PRELUDE .. [[
local url, name, dir, who, rounds = ...
local warm = portalock.RedisLock(name .. "-warm", {redis = url}) -- opens the session up front
assert(warm:acquire(10))
assert(warm:release())
local lock = portalock.RedisLock(name, {redis = url})
for round = 1, tonumber(rounds) do
  await(dir .. "/go." .. round)
  local won, err = lock:acquire(nil, nil, true)
  put(dir .. "/" .. who .. "." .. round, won and "won" or err.kind)
  if won then
    await(dir .. "/release." .. round)
    assert(lock:release())
  end
  put(dir .. "/" .. who .. "." .. round .. ".done", "")
end
]]

-- A soak worker: acquires and releases MAXIMUM ("lock" or a semaphore's permits) for SECONDS,
-- logging each hold for spec/support/redis_checker.lua.
local SOAK_WORKER = CHILD_PRELUDE .. [[
local checker = require "spec.support.redis_checker"
local url, name, log, maximum, seconds = ...
math.randomseed(core.getpid())
local obj = maximum == "lock" and portalock.RedisLock(name, {redis = url})
  or portalock.RedisSemaphore(name, tonumber(maximum), {redis = url})
local deadline = core.monotonic() + tonumber(seconds)
while core.monotonic() < deadline do
  local held, err = obj:acquire(20)
  if not held then
    io.stderr:write(tostring(err), "\n")
    os.exit(2)
  end
  checker.record(log, "grant", obj.token)
  sleep(math.random() * 0.004)
  checker.record(log, "release", obj.token)
  assert(obj:release())
end
]]

-- A holder that watches its grant: holds (lease TTL) until check() fails, then releases and
-- reports "<reason> <release's first result> <its error kind or ->" in OUT.
local WATCHING_HOLDER = CHILD_PRELUDE .. [[
local url, name, ttl, ready, out = ...
local lock = portalock.RedisLock(name, {redis = url, ttl = tonumber(ttl)})
assert(lock:acquire(10))
put(ready, lock.token) -- a decimal string
local deadline = core.monotonic() + 60
while lock:check() do
  if core.monotonic() > deadline then os.exit(3) end
  sleep(0.01)
end
local _, reason = lock:check()
local ok, err = lock:release()
put(out, string.format("%s %s %s", reason, tostring(ok), err and err.kind or "-"))
]]

-- A waiter: acquires within TIMEOUT and reports "won <token>" or the error in OUT; the winner
-- releases at once.
local WAITER = CHILD_PRELUDE .. [[
local url, name, timeout, out = ...
local lock = portalock.RedisLock(name, {redis = url})
local won, err = lock:acquire(tonumber(timeout))
put(out, won and "won " .. lock.token or tostring(err))
if won then assert(lock:release()) end
]]

describe("portalocker's tests: test_redis", function()
  local fixture = redis_fixture.new("upstream")
  local server, url, dir
  local serial = 0

  setup(function()
    fixture:start()
    server, url = fixture.server, fixture.url
  end)

  teardown(function()
    fixture:close()
  end)

  before_each(function()
    dir = helper.tmpdir()
  end)

  after_each(function()
    tcp_proxy.close_all()
    helper.rmtree(dir)
  end)

  -- A channel no other case uses (upstream: str(random.random())).
  local function channel() return fixture:fresh() end
  local function lock(name, opts) return fixture:lock(name, opts) end

  local function numsub(name)
    local out = server:cli("PUBSUB", "NUMSUB", name)
    return tonumber(out:match("\n(%d+)"))
  end

  -- The server's clients of portalock sessions: hex of the session -> {command = id,
  -- subscription = id}, from CLIENT LIST (the core names them portalock-<hex>-<role>).
  local function sessions()
    local found = {}
    for id, hex, role in server:cli("CLIENT", "LIST"):gmatch("id=(%d+) [^\n]- name=portalock%-(%x+)%-(%a+) ") do
      found[hex] = found[hex] or {}
      found[hex][role] = id
    end
    return found
  end

  -- The session that appears beside those in `before` (a child's): its hex, once there.
  local function new_session(before)
    local hex
    assert(helper.wait_until(function()
      for h, roles in pairs(sessions()) do
        if not before[h] and roles.subscription then
          hex = h
          return true
        end
      end
    end, 15), "no new session appeared")
    return hex
  end

  -- Closes (CLIENT KILL ID) the subscription of every session but those in `spared`: what
  -- upstream's live cases do to a holder. Returns the hexes it cut off.
  local function kill_subscriptions(spared)
    local killed = {}
    for hex, roles in pairs(sessions()) do
      if not (spared and spared[hex]) and roles.subscription then
        local out = server:cli("CLIENT", "KILL", "ID", roles.subscription)
        assert.are.equal("1\n", out)
        killed[#killed + 1] = hex
      end
    end
    return killed
  end

  local function spawn_child(code, ...)
    serial = serial + 1
    local log = dir .. "/child." .. serial .. ".log"
    return helper.spawn(helper.lua_command(code, ...), log), log
  end

  local function await_file(path, seconds, log)
    assert(helper.wait_until(function() return helper.exists(path) end, seconds or 15),
      "no " .. path .. (log and (": " .. tostring(helper.read(log))) or ""))
    return helper.read(path)
  end

  -- A fresh channel held here, with a WAITER child (15 s) waiting for it: the channel, the
  -- holder, and the waiter: {pid, out, log, session = its hex, before = the sessions before it}.
  local function hold_with_waiter()
    local name = channel()
    local holder = lock(name)
    assert(holder:acquire())
    local w = {before = sessions(), out = dir .. "/waiter"}
    w.pid, w.log = spawn_child(WAITER, url, name, "15", w.out)
    w.session = new_session(w.before)
    assert(helper.wait_until(function() return numsub(name) == 2 end, 10)) -- the waiter waits
    return name, holder, w
  end

  local function hold_elsewhere(name) return fixture:hold_elsewhere(name) end
  local let_go, timed = redis_fixture.let_go, redis_fixture.timed

  describe("basics", function()
    it("test_redis_lock: a second fail_when_locked acquire is AlreadyLocked, and leaves no subscription", function()
      local name = channel()
      local lock_a, lock_b = lock(name), lock(name)
      assert(lock_a:acquire(nil, nil, true))
      local obj, err = lock_b:acquire(nil, nil, true)
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      -- the contender is left unsubscribed (what test_redis_incompatible_lock_modes_contend asks)
      assert.are.equal(1, numsub(name))
      assert.is_true(lock_a:release())
      assert.are.equal(0, numsub(name))
    end)

    local TIMEOUTS = {{"None", nil}, {"0", 0}, {"0.001", 0.001}}
    local CHECK_INTERVALS = {{"None", nil}, {"0", 0}, {"0.0005", 0.0005}}
    for _, t in ipairs(TIMEOUTS) do
      for _, c in ipairs(CHECK_INTERVALS) do
        local timeout, check_interval = t[2], c[2]
        it("test_redis_lock_timeout[" .. t[1] .. "-" .. c[1] .. "]: the second lock times out", function()
          local name = channel()
          local function patched()
            return lock(name, {timeout = PATCHED_TIMEOUT, check_interval = PATCHED_CHECK_INTERVAL})
          end
          local lock_a, lock_b = patched(), patched()
          assert(lock_a:acquire(timeout, check_interval))
          local obj, err = lock_b:acquire(timeout, check_interval)
          assert.is_nil(obj)
          assert.are.equal("AlreadyLocked", err.kind)
          -- test_redis_timeout_expiry_closes_created_connection: the waiter left the channel
          assert.are.equal(1, numsub(name))
          assert.is_true(lock_a:release())
        end)
      end
    end

    it("test_redis_lock_context: a with inside another's with is AlreadyLocked", function()
      local name = channel()
      local lock_a = lock(name, {fail_when_locked = true})
      portalock.with(lock_a, function()
        local lock_b = lock(name, {fail_when_locked = true})
        local ok, err = pcall(portalock.with, lock_b, function() error("entered the body") end)
        assert.is_false(ok)
        assert.are.equal("AlreadyLocked", err.kind)
      end)
      assert.is_false(lock_a:check())
    end)

    if _VERSION == "Lua 5.4" then
      it("test_redis_lock_context: the same with <close>", function()
        local name = channel()
        local scoped = assert(load([[
          local lock_a, lock_b = ...
          local held <close> = assert(lock_a:acquire())
          return lock_b:acquire()
        ]]))
        local obj, err = scoped(lock(name, {fail_when_locked = true}), lock(name, {fail_when_locked = true}))
        assert.is_nil(obj)
        assert.are.equal("AlreadyLocked", err.kind)
        assert(lock(name):acquire(0)):release()
      end)
    end

    it("test_redis_relock: acquiring inside its own with raises", function()
      local lock_a = lock(channel(), {fail_when_locked = true})
      portalock.with(lock_a, function()
        local ok, message = pcall(lock_a.acquire, lock_a)
        assert.is_false(ok)
        assert.matches("already holds its grant", message)
        assert.is_true(lock_a:check()) -- the hold is untouched
      end)
      assert.is_true(lock_a:release()) -- after the with: nothing held, a no-op
    end)

    it("test_redis_get_connection_creates_and_caches: connects at the first acquire, then reuses", function()
      -- Settings of this case alone (ttl 29), so that no session of another case is reused.
      local opts = {redis = url, ttl = 29}
      local before = sessions()
      local function opened() -- the sessions opened since `before`
        local list = {}
        for hex in pairs(sessions()) do
          if not before[hex] then
            list[#list + 1] = hex
          end
        end
        return list
      end
      local lock_a, lock_b = portalock.RedisLock(channel(), opts), portalock.RedisLock(channel(), opts)
      assert.are.same({}, opened()) -- constructing connects to nothing
      assert(lock_a:acquire())
      local first = opened()
      assert.are.equal(1, #first)
      assert(lock_b:acquire())
      assert.are.same(first, opened()) -- the second object opened no connection of its own
      assert.are.equal(lock_a:lost_fd(), lock_b:lost_fd())
      assert.is_true(lock_a:release())
      assert.is_true(lock_b:release())
    end)

    it("test_redis_acquire_fail_when_locked_fails_fast: with a live holder, long before the timeout", function()
      local name = channel()
      local pid, _, release = hold_elsewhere(name)
      local contender = lock(name, {timeout = 30, fail_when_locked = true})
      local elapsed, obj, err = timed(contender.acquire, contender)
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_true(elapsed < 10, elapsed)
      let_go(pid, release)
    end)

    it("test_live_redis_wrong_password_raises_promptly: a LockException, not AlreadyLocked", function()
      local out = server:cli("ACL", "SETUSER", "upstream-auth", "on", ">right", "~*", "&*", "+@all")
      assert.are.equal("OK\n", out)
      local wrong = lock(channel(), {timeout = 30,
        redis = {host = "127.0.0.1", port = server.port, username = "upstream-auth", password = "wrong"}})
      local elapsed, obj, err = timed(wrong.acquire, wrong)
      assert.is_nil(obj)
      assert.are.equal("LockException", err.kind)
      assert.is_true(elapsed < 5, elapsed)
      -- test_redis_acquire_rolls_back_pubsub_on_subscribe_error: a retry meets the same error,
      -- not "already holds"
      local again
      again, err = wrong:acquire(0)
      assert.is_nil(again)
      assert.are.equal("LockException", err.kind)
    end)
  end)

  describe("mutual exclusion between processes", function()
    it("test_redis_two_nonblocking_writers_exactly_one_succeeds: over 20 rounds", function()
      local name, rounds = channel(), 20
      local pids, logs = {}, {}
      for i, who in ipairs({"a", "b"}) do
        pids[i], logs[i] = spawn_child(CONTENDER, url, name, dir, who, rounds)
      end
      for round = 1, rounds do
        helper.write(dir .. "/go." .. round, "")
        local results = {}
        for i, who in ipairs({"a", "b"}) do
          results[who] = await_file(dir .. "/" .. who .. "." .. round, 15, logs[i])
        end
        local winners = (results.a == "won" and 1 or 0) + (results.b == "won" and 1 or 0)
        assert.are.equal(1, winners, "round " .. round .. ": a " .. results.a .. ", b " .. results.b)
        local loser = results.a == "won" and results.b or results.a
        assert.are.equal("AlreadyLocked", loser, "round " .. round)
        -- the loser is cleaned up: only the winner is subscribed, and the winner alone holds
        assert.are.equal(1, numsub(name), "round " .. round)
        local obj, err = lock(name):acquire(0)
        assert.is_nil(obj, "round " .. round)
        assert.are.equal("AlreadyLocked", err.kind)
        helper.write(dir .. "/release." .. round, "")
        for _, who in ipairs({"a", "b"}) do
          await_file(dir .. "/" .. who .. "." .. round .. ".done")
        end
        assert.are.equal(0, numsub(name), "round " .. round)
      end
      for _, pid in ipairs(pids) do
        assert(helper.wait_until(function() return not helper.alive(pid) end, 15))
      end
    end)

    -- test_redis_stale_newcomer_soak_never_two_exclusive and
    -- test_redis_reader_mixed_soak_single_writer_at_a_time: processes churn on one name and a
    -- log of every hold shows never more than `maximum` at once.
    local function soak(maximum, workers, seconds)
      local name, log = channel(), dir .. "/grants.log"
      local pids, logs = {}, {}
      for i = 1, workers do
        pids[i], logs[i] = spawn_child(SOAK_WORKER, url, name, log, maximum, seconds)
      end
      for i, pid in ipairs(pids) do
        assert(helper.wait_until(function() return not helper.alive(pid) end, seconds + 30),
          "soak worker " .. i .. " did not finish")
        local errors = helper.read(logs[i])
        assert.are.equal("", errors, "soak worker " .. i .. ": " .. tostring(errors))
      end
      local report, problem = checker.check(log, {maximum = maximum == "lock" and 1 or tonumber(maximum)})
      assert(report, problem)
      return report
    end

    it("test_redis_stale_newcomer_soak_never_two_exclusive: 5 processes on a lock never overlap", function()
      local report = soak("lock", 5, 3)
      assert.are.equal(1, report.peak)
      assert.is_true(report.grants >= 5, report.grants)
      assert.are.equal(report.grants, report.release)
    end)

    it("test_redis_reader_mixed_soak_single_writer_at_a_time: a semaphore of 2 never has 3", function()
      local report = soak("2", 5, 3)
      assert.is_true(report.peak <= 2, report.peak)
      assert.is_true(report.grants >= 5, report.grants)
    end)
  end)

  describe("crash recovery", function()
    it("test_live_redis_reaps_unresponsive_shared_holder: a SIGKILLed holder's lock is taken within 2 s", function()
      local name = channel()
      local pid = hold_elsewhere(name)
      helper.kill(pid, "KILL")
      local contender = lock(name, {timeout = 2, check_interval = 0.02})
      local elapsed, obj, err = timed(contender.acquire, contender)
      assert(obj, err)
      assert.is_true(elapsed < 2, elapsed)
      assert.is_true(contender:release())
    end)

    it("test_live_redis_reaps_unresponsive_shared_holder and test_live_redis_reaped_wedged_holder_observes_loss: "
      .. "a stopped holder is displaced once its lease ends, and sees its loss within 2 s of resuming", function()
      local name = channel()
      local ready, out = dir .. "/ready", dir .. "/out"
      local pid, log = spawn_child(WATCHING_HOLDER, url, name, "1", ready, out)
      local their_token = await_file(ready, 15, log)
      helper.kill(pid, "STOP")
      local contender = lock(name, {timeout = 5, check_interval = 0.02})
      local obj, err = contender:acquire()
      assert(obj, err)
      assert.is_true(redis_fixture.token_above(contender.token, their_token))
      helper.kill(pid, "CONT")
      local resumed = core.monotonic()
      assert.are.equal("lost nil LockException", await_file(out, 2, log))
      assert.is_true(core.monotonic() - resumed < 2)
      assert.is_true(contender:check()) -- the loser's release took nothing from the new holder
      assert.is_true(contender:ensure())
      assert.is_true(contender:release())
    end)
  end)

  describe("loss detection", function()
    it("test_redis_held_worker_failure_marks_lost: a holder whose subscription is killed is lost", function()
      local l = lock(channel())
      assert(l:acquire())
      local token = l.token
      assert.is_true(#kill_subscriptions() >= 1)
      -- lost, and on_lost's counterpart in Lua (lost_fd() readable), ensure_held's (ensure()) and
      -- release, which does not raise, say so
      redis_fixture.assert_lost(l)
      -- the loss is still observable after release
      local held, reason = l:check()
      assert.is_false(held)
      assert.are.equal("lost", reason)
      local ok, err = l:ensure()
      assert.is_nil(ok)
      assert.are.equal("LockException", err.kind)
      -- the next acquire resets it
      assert.are.equal(l, assert(l:acquire()))
      assert.is_true(l:check())
      assert.is_true(l:ensure())
      assert.is_true(redis_fixture.token_above(l.token, token))
      assert.is_true(l:release())
    end)

    it("test_redis_lost_lock_is_reusable_without_release", function()
      local l = lock(channel())
      assert(l:acquire())
      kill_subscriptions()
      assert.is_true(helper.wait_until(function() return not l:check() end, 5))
      assert.are.equal(l, assert(l:acquire(5)))
      assert.is_true(l:check())
      assert.is_true(l:release())
    end)

    it("test_live_redis_client_kill_revokes_lock_loudly and test_live_redis_no_unreapable_ghost", function()
      local name, holder, w = hold_with_waiter()
      local pid, out, log = w.pid, w.out, w.log
      local killed = kill_subscriptions({[w.session] = true})
      assert.is_true(#killed >= 1)
      assert.is_true(helper.wait_until(function() return not holder:check() end, 5))
      local result = await_file(out, 10, log)
      assert.matches("^won %d+$", result)
      assert.is_true(redis_fixture.token_above(result:match("%d+"), holder.token))
      assert(helper.wait_until(function() return not helper.alive(pid) end, 15))
      -- the channel drains to 0, and nothing of the killed sessions comes back
      assert.is_true(helper.wait_until(function() return numsub(name) == 0 end, 5))
      helper.sleep(0.3)
      local now = sessions()
      for _, hex in ipairs(killed) do
        assert.is_nil(now[hex], "session " .. hex .. " reconnected")
      end
      local ok, err = holder:release()
      assert.is_nil(ok)
      assert.are.equal("LockException", err.kind)
    end)

    it("test_redis_waiter_worker_failure_scopes_to_attempt: a waiter whose connection breaks is not a "
      .. "holder, and acquires later", function()
      local _, holder, w = hold_with_waiter()
      local pid, out, log = w.pid, w.out, w.log
      local cut = kill_subscriptions(w.before)
      assert.are.same({w.session}, cut)
      helper.sleep(0.5)
      assert.is_true(holder:check())
      assert.is_true(holder:ensure())
      -- upstream: the broken subscription costs the waiter one attempt, not its acquire
      assert.is_nil(helper.read(out), "the waiter's acquire returned while the lock was held")
      assert.is_true(holder:release())
      assert.matches("^won %d+$", await_file(out, 15, log))
      assert(helper.wait_until(function() return not helper.alive(pid) end, 15))
    end)

    it("test_live_redis_self_check_detects_half_open_link: a holder cut off by a half-open link is lost", function()
      local name = channel()
      local proxy = tcp_proxy.start(server.port)
      local cut_off = lock(name, {ttl = 1.5, command_timeout = 0.5,
        redis = {host = "127.0.0.1", port = proxy.port}})
      assert(cut_off:acquire())
      proxy:blackhole()
      assert.is_true(helper.wait_until(function() return not cut_off:check() end, 5))
      local _, reason = cut_off:check()
      assert.are.equal("lost", reason)
      local contender = lock(name, {timeout = 5})
      assert(contender:acquire())
      assert.is_true(redis_fixture.token_above(contender.token, cut_off.token))
      assert.is_true(contender:release())
      proxy:close()
    end)
  end)

  describe("with and a lost grant", function()
    it("test_redis_exit_raises_lock_lost_after_clean_body", function()
      local l = lock(channel())
      local ran = false
      local ok, err = pcall(portalock.with, l, function()
        kill_subscriptions()
        assert(helper.wait_until(function() return not l:check() end, 5))
        ran = true
      end)
      assert.is_true(ran)
      assert.is_false(ok)
      assert.are.equal("LockException", err.kind)
      assert.is_false(l:check())
    end)

    it("test_redis_exit_does_not_mask_body_exception", function()
      local l = lock(channel())
      local ok, err = pcall(portalock.with, l, function()
        kill_subscriptions()
        assert(helper.wait_until(function() return not l:check() end, 5))
        error("body", 0)
      end)
      assert.is_false(ok)
      assert.are.equal("body", err)
    end)

    it("test_redis_exit_propagates_body_exception_without_loss", function()
      local name = channel()
      local l = lock(name)
      local ok, err = pcall(portalock.with, l, function() error("body", 0) end)
      assert.is_false(ok)
      assert.are.equal("body", err)
      assert(lock(name):acquire(0)):release() -- released
    end)
  end)

  describe("fork", function()
    it("test_redis_release_in_forked_child_leaves_parent_lock_alone", function()
      fixture:assert_fork_leaves_grant(channel(), function(l)
        l:release()
        return true
      end)
    end)
  end)

  describe("fencing", function()
    it("test_redis_fence_token_increments_across_grants: strictly, across alternating holders", function()
      fixture:assert_tokens_increase(channel())
    end)

    it("test_redis_fence_token_none_while_unheld_shared_or_disabled: nil before any acquire", function()
      assert.is_nil(lock(channel()).token)
    end)

    it("test_redis_fence_token_available_inside_with_block", function()
      local l = lock(channel())
      portalock.with(l, function(held)
        assert.matches("^[1-9]%d*$", held.token)
        assert.is_true(l:fenced_write(l.name .. ":fenced", "inside"))
      end)
    end)

    it("test_redis_fence_token_survives_loss_until_next_acquire, and the next acquire resets it", function()
      local name = channel()
      local l = lock(name)
      assert(l:acquire())
      local token = l.token
      kill_subscriptions()
      assert.is_true(helper.wait_until(function() return not l:check() end, 5))
      assert.are.equal(token, l.token) -- survives the loss
      local other = lock(name)
      assert(other:acquire(5))
      local obj, err = l:acquire(0) -- test_redis_fence_token_reset_by_the_next_acquire
      assert.is_nil(obj)
      assert.are.equal("AlreadyLocked", err.kind)
      assert.is_nil(l.token)
      assert.is_true(other:release())
    end)
  end)
end)
