-- RedisLock and RedisSemaphore when processes, connections and the server fail: worker
-- processes (spec/support/redis_worker.lua) against a real redis-server, their grants judged
-- by spec/support/redis_checker.lua. Leases are short (1 to 3 s) so that every scenario is
-- over in seconds.
local core = require "portalock.core"
local helper = require "spec.support.helper"
local checker = require "spec.support.redis_checker"
local redis_server = require "spec.support.redis_server"
local tcp_proxy = require "spec.support.tcp_proxy"

-- How often a waiter re-checks unwoken (PORTALOCK_REDIS_RECHECK_INTERVAL, portalock.h).
local RECHECK_INTERVAL = 0.1
local WAIT_SECONDS = 20

describe("RedisLock and RedisSemaphore under faults #faults", function()
  local missing = redis_server.missing()
    or not core.redis_session and "portalock was built without hiredis (libhiredis-dev)"
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local dir, log, workers, name_count

  before_each(function()
    dir, workers, name_count = helper.tmpdir(), {}, 0
    log = dir .. "/events"
  end)

  after_each(function()
    for _, w in ipairs(workers) do
      helper.kill(w.pid, "KILL")
      local child = helper.read(dir .. "/child." .. w.id)
      if child then
        helper.kill(child:match("^%d+"), "KILL")
      end
    end
    tcp_proxy.close_all()
    redis_server.close_all()
    helper.rmtree(dir)
  end)

  -- A name of its own for each test.
  local function fresh_name()
    name_count = name_count + 1
    return "faults-" .. core.getpid() .. "-" .. name_count .. "-" .. math.random(1e9)
  end

  -- Starts a worker (see redis_worker.lua) with options {key = value}; its files are
  -- dir/<kind>.<id> (ready, release, write_gate, opened, start, child: pass true to use them).
  local function worker(role, url, name, opts)
    local w = {id = #workers + 1}
    local args = {}
    for key, value in pairs(opts or {}) do
      if value == true then
        value = dir .. "/" .. key .. "." .. w.id
        w[key] = value
      end
      args[#args + 1] = key .. "=" .. tostring(value)
    end
    table.sort(args)
    w.out = dir .. "/out." .. w.id
    w.pid = helper.spawn(helper.script_command("redis_worker", role, url, name, log, (table.unpack or unpack)(args)),
      w.out)
    workers[#workers + 1] = w
    return w
  end

  local function output(w)
    return helper.read(w.out) or ""
  end

  -- Waits for a line of the worker's output that matches `pattern`; returns its captures.
  local function await_line(w, pattern, seconds)
    local found
    local ok = helper.wait_until(function()
      for line in output(w):gmatch("[^\n]+") do
        found = {line:match(pattern)}
        if found[1] then
          return true
        end
      end
      return false
    end, seconds or WAIT_SECONDS)
    assert(ok, "worker " .. w.id .. " printed no line like '" .. pattern .. "':\n" .. output(w))
    return (table.unpack or unpack)(found)
  end

  -- Waits for the file that worker w writes (not past its end).
  local function await_file(path, w)
    local ok = helper.wait_until(function() return helper.exists(path) or not helper.alive(w.pid) end, WAIT_SECONDS)
    assert(ok and helper.exists(path), "worker " .. w.id .. " wrote no " .. path .. ":\n" .. output(w))
  end

  local function await_exit(w, seconds)
    assert(helper.wait_until(function() return not helper.alive(w.pid) end, seconds or WAIT_SECONDS),
      "worker " .. w.id .. " did not finish:\n" .. output(w))
  end

  local function open(path)
    helper.write(path, "")
  end

  -- The checker's report on the log; its message (naming the lines) when the log fails.
  local function judged(opts)
    local report, err = checker.check(log, opts)
    assert(report, err)
    return report
  end

  -- The time of the first `event` of worker w in the log.
  local function logged(w, event)
    for _, e in ipairs(assert(checker.parse(log))) do
      if e.pid == w.pid and e.event == event then
        return e.time
      end
    end
    error("worker " .. w.id .. " logged no " .. event)
  end

  -- The spec's note that it kills worker w now (the end of its grant, for the checker).
  local function kill(w)
    checker.record(log, "killed", nil, w.pid)
    helper.kill(w.pid, "KILL")
  end

  -- A waiter: opens its session, then acquires, and holds for `seconds` once granted.
  local function waiter(url, name, opts)
    opts = opts or {}
    opts.opened, opts.seconds = true, opts.seconds or 0.2
    local w = worker("hold", url, name, opts)
    await_file(w.opened, w)
    helper.sleep(0.2) -- into its wait
    return w
  end

  local function holder(url, name, opts)
    opts = opts or {}
    opts.ready = true
    local w = worker("hold", url, name, opts)
    await_file(w.ready, w)
    return w
  end

  it("keeps 8 processes x 200 acquisitions of a lock one at a time, tokens increasing", function()
    local server, name = redis_server.start(), fresh_name()
    local list = {}
    for i = 1, 8 do
      list[i] = worker("rounds", server.url, name, {ttl = 2, rounds = 200})
    end
    for _, w in ipairs(list) do
      await_exit(w, 90)
      assert.matches("released\n$", output(w))
    end
    local report = judged()
    assert.are.same({1600, 1600, 1600, 0, 0, 1},
      {report.grants, report.release, report.write_ok, report.write_rejected, report.lost, report.peak})
  end)

  it("keeps 10 processes on a semaphore of 3 to three at a time", function()
    local server, name = redis_server.start(), fresh_name()
    local list = {}
    for i = 1, 10 do
      list[i] = worker("rounds", server.url, name, {ttl = 2, maximum = 3, rounds = 20, hold = 0.02})
    end
    for _, w in ipairs(list) do
      await_exit(w, 90)
      assert.matches("released\n$", output(w))
    end
    local report = judged({maximum = 3})
    assert.are.same({200, 200, 0, 3}, {report.grants, report.release, report.lost, report.peak})
  end)

  it("hands a SIGKILLed holder's lock over at once, long before its lease ends", function()
    local server, name = redis_server.start(), fresh_name()
    local a = holder(server.url, name, {ttl = 3})
    local b = waiter(server.url, name, {ttl = 3})
    kill(a)
    await_line(b, "^released$")
    local takeover = logged(b, "grant") - logged(a, "killed")
    assert.is_true(takeover < 1, string.format("took %.3f s (the lease: 3 s)", takeover))
    assert.are.equal(0, judged().lost)
  end)

  it("keeps the grant of a holder whose forked child is SIGKILLed", function()
    local server, name = redis_server.start(), fresh_name()
    local a = holder(server.url, name, {ttl = 1, fork = 1, child = true, seconds = 3, ensure = 1})
    local b = waiter(server.url, name, {ttl = 1})
    await_file(a.child, a)
    local child_pid, held, why = helper.read(a.child):match("^(%d+) (%S+) (%S+)")
    -- The child's copy of the handle says so, and its release gives nothing back.
    assert.are.same({"false", "forked"}, {held, why})
    helper.kill(child_pid, "KILL")
    await_line(a, "^released$")
    assert.matches("ensure true", output(a))
    await_line(b, "^released$")
    local report = judged()
    assert.are.same({2, 0}, {report.grants, report.lost})
    assert.is_true(logged(b, "grant") > logged(a, "release"))
  end)

  -- What the server holds for a name (portalock.h names the keys), for a failure's message.
  local function server_view(server, name)
    local view = {}
    for _, key in ipairs({"holders", "queue", "subscribers"}) do
      local full = "portalock:{" .. name .. "}:" .. key
      local command = key == "queue" and {"ZRANGE", full, "0", "-1", "WITHSCORES"} or {"HGETALL", full}
      view[#view + 1] = key .. ": " .. server:cli((table.unpack or unpack)(command)):gsub("\n", " ")
    end
    view[#view + 1] = "subscribers of '" .. name .. "': " .. server:cli("PUBSUB", "NUMSUB", name):gsub("\n", " ")
    return table.concat(view, "\n")
  end

  -- A holder `a` cut off from the server until its lease has run out: `b`, waiting, takes over
  -- and writes; then `a` must say it lost the grant before it writes again, and that write
  -- is rejected. `cut` does the cutting off, `restore` ends it once b has written; `held`:
  -- how long a holds before b comes.
  local function overtaken(server, url_a, url_b, cut, restore, held)
    local name = fresh_name()
    local a = holder(url_a, name, {ttl = 1, write_gate = true, work = 0.05})
    helper.sleep(held or 0)
    local b = waiter(url_b, name, {ttl = 1, seconds = 1})
    local started = core.monotonic()
    cut(a)
    local taken_over, err = pcall(await_line, b, "^write_ok$", 10)
    if not taken_over then
      error(tostring(err) .. "\nthe server's view of '" .. name .. "':\n" .. server_view(server, name), 0)
    end
    restore(a)
    assert.are.equal("lost", await_line(a, "^lost (%S+)$"))
    open(a.write_gate)
    await_line(a, "^write_rejected$")
    -- A grant whose request waited out a stalled server comes back with its lease already
    -- spent by b's clock (it counts from the request): b may find it lost at once.
    await_exit(b)
    local b_lost = output(b):find("\nlost lost\n") and 1 or 0
    assert.is_truthy(b_lost == 1 or output(b):find("\nreleased\n"), output(b))
    -- Writes that a holding a began before b's grant may be rejected too; after that grant,
    -- a writes only once it has reported lost, and only that write is rejected.
    local report = judged({lost_before_stale_write = true})
    assert.are.same({2, 1 + b_lost}, {report.grants, report.lost})
    assert.is_true(report.write_rejected >= 1)
    return logged(b, "grant") - started
  end

  it("reports lost to a holder SIGSTOPped past its lease, and rejects its write after SIGCONT", function()
    local server = redis_server.start()
    overtaken(server, server.url, server.url, function(a) helper.kill(a.pid, "STOP") end,
      function(a) helper.kill(a.pid, "CONT") end)
  end)

  it("reports lost to a holder SIGSTOPped past its lease after a hold of several leases", function()
    local server = redis_server.start()
    overtaken(server, server.url, server.url, function(a) helper.kill(a.pid, "STOP") end,
      function(a) helper.kill(a.pid, "CONT") end, 2.5)
  end)

  it("loses nothing when the holder is SIGSTOPped for less than ttl/3", function()
    local server, name = redis_server.start(), fresh_name()
    local a = holder(server.url, name, {ttl = 2, seconds = 2.5, ensure = 1, work = 0.05})
    local b = waiter(server.url, name, {ttl = 2})
    helper.kill(a.pid, "STOP")
    helper.sleep(0.3)
    helper.kill(a.pid, "CONT")
    await_line(a, "^released$")
    assert.matches("ensure true", output(a))
    await_line(b, "^released$")
    local report = judged()
    assert.are.same({2, 0, 0}, {report.grants, report.lost, report.write_rejected})
    assert.is_true(report.write_ok > 10)
  end)

  for _, how in ipairs({"SIGKILL", "SIGTERM with an RDB"}) do
    it("loses every grant when redis-server stops (" .. how .. "); tokens still increase after its restart", function()
      local rdb = how ~= "SIGKILL"
      local server, name = redis_server.start({rdb = rdb}), fresh_name()
      local a = holder(server.url, name, {ttl = 2})
      local b = waiter(server.url, name, {ttl = 2})
      if rdb then
        server:stop()
        assert.is_true(helper.exists(server.dir .. "/dump.rdb"))
      else
        server:kill()
      end
      await_line(a, "^lost ")
      assert.are.equal("LockException", await_line(b, "^acquire_failed (%S+)"))
      server:restart()
      local c = holder(server.url, name, {ttl = 2, seconds = 0})
      await_line(c, "^released$")
      local report = judged()
      assert.are.same({2, 1}, {report.grants, report.lost})
    end)
  end

  it("reports lost to a holder paused by CLIENT PAUSE past its lease, and rejects its write", function()
    local server = redis_server.start()
    overtaken(server, server.url, server.url, function() server:pause(2.5) end, function() end)
  end)

  it("reports lost to a holder while the server sleeps (DEBUG SLEEP), and rejects its write", function()
    local server, slept = redis_server.start({debug = true}), nil
    overtaken(server, server.url, server.url, function() slept = server:debug_sleep(2.5) end, function() end)
    assert.are.equal("OK\n", slept())
  end)

  it("holds a lock partitioned from the server to its lease, then rejects its write (half-open)", function()
    local server = redis_server.start()
    local proxy = tcp_proxy.start(server.port)
    local takeover = overtaken(server, redis_server.url(proxy.port), server.url, function() proxy:blackhole() end,
      function() proxy:heal() end)
    -- The server still saw the partitioned holder's connections: only its lease ended it.
    assert.is_true(takeover > 0.5, string.format("taken over after %.3f s (the lease: 1 s)", takeover))
  end)

  -- The holder's session ends at the server (`cut`); a waiter takes over long before the lease.
  local function session_ended(url_a, url_b, cut)
    local name = fresh_name()
    local a = holder(url_a, name, {ttl = 3, write_gate = true})
    local b = waiter(url_b, name, {ttl = 3, seconds = 0.5})
    local started = core.monotonic()
    cut()
    assert.are.equal("lost", await_line(a, "^lost (%S+)$"))
    await_line(b, "^write_ok$")
    -- The lost session cannot write any more: no stale write reaches the server.
    open(a.write_gate)
    assert.matches("LockException", await_line(a, "^write_failed (.*)$"))
    await_line(b, "^released$")
    local takeover = logged(b, "grant") - started
    assert.is_true(takeover < 1, string.format("took %.3f s (the lease: 3 s)", takeover))
    local report = judged()
    assert.are.same({2, 1, 0}, {report.grants, report.lost, report.write_rejected})
  end

  it("hands the lock over when the holder's subscription is killed (CLIENT KILL)", function()
    local server = redis_server.start()
    session_ended(server.url, server.url, function()
      local list = server:cli("CLIENT", "LIST")
      local ids = {}
      for id in list:gmatch("id=(%d+) [^\n]*name=portalock%-%x+%-subscription") do
        ids[#ids + 1] = tonumber(id)
      end
      -- The holder's session and the waiter's: ids grow, and the holder's came first.
      assert.are.equal(2, #ids, list)
      assert.are.equal("1\n", (server:cli("CLIENT", "KILL", "ID", tostring(math.min(ids[1], ids[2])))))
    end)
  end)

  it("hands the lock over when the holder's connections are reset", function()
    local server = redis_server.start()
    local proxy = tcp_proxy.start(server.port)
    session_ended(redis_server.url(proxy.port), server.url, function() proxy:reset() end)
  end)

  it("grants a waiter a lock released while its subscription was on its way", function()
    local server, name = redis_server.start(), fresh_name()
    local proxy = tcp_proxy.start(server.port)
    local a = holder(server.url, name, {ttl = 2, release = true})
    local b = worker("hold", redis_server.url(proxy.port), name, {ttl = 2, opened = true, start = true,
      seconds = 0})
    await_file(b.opened, b)
    proxy:stall("SUBSCRIBE")
    open(b.start)
    assert.is_true(helper.wait_until(function() return proxy:stalled() == 1 end, WAIT_SECONDS),
      "the waiter's subscription never came:\n" .. output(b))
    open(a.release)
    await_line(a, "^released$")
    helper.sleep(0.2)
    local healed = core.monotonic()
    proxy:heal()
    await_line(b, "^released$")
    judged()
    -- Not before its subscription (a grant then could miss its wake-up), and at once after.
    local waited = logged(b, "grant") - healed
    assert.is_true(waited > 0 and waited < RECHECK_INTERVAL,
      string.format("granted %.3f s after its subscription was let through", waited))
  end)
end)
