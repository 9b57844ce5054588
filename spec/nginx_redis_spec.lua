-- RedisLock and RedisSemaphore inside a real nginx (LuaJIT, cosockets), against a real
-- redis-server on loopback: the grant is the same protocol as outside nginx (a holder outside
-- nginx and a request exclude each other), a wait never blocks the worker, and a request's
-- grant ends with the request.
local core = require "portalock.core"
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"
local redis_fixture = require "spec.support.redis_fixture"

local LOCATIONS = [[
    location = /ping {
      content_by_lua_block { ngx.say("pong") }
    }
    # acquire NAME (a lock, or a semaphore of MAX) within TIMEOUT, hold it HOLD seconds,
    # release it unless FORGET; reports the outcome, the wait and when it was acquired.
    location = /acquire {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local args = ngx.req.get_uri_args()
        local opts = {redis = args.url or REDIS_URL, timeout = tonumber(args.timeout or 5),
          ttl = tonumber(args.ttl)}
        local obj = args.max and portalock.RedisSemaphore(args.name, tonumber(args.max), opts)
          or portalock.RedisLock(args.name, opts)
        local started = core.monotonic()
        local held, err = obj:acquire()
        local acquired_at = core.monotonic()
        if not held then
          ngx.say(string.format("%s %.3f %s", err.kind, acquired_at - started, err.message))
          return
        end
        local check, token = obj:check(), obj.token
        if args.hold then
          ngx.sleep(tonumber(args.hold))
        end
        if args.forget then
          ngx.say(string.format("forgot %.3f %.6f", acquired_at - started, acquired_at))
          return
        end
        local after, why = obj:check()
        local ensured = obj:ensure()
        local releasing = core.monotonic()
        local released, rerr = obj:release()
        ngx.say(string.format("acquired %.3f %.6f token=%s(%s) check=%s after=%s ensure=%s "
          .. "released=%s%s releasing=%.6f", acquired_at - started, acquired_at, tostring(token),
          type(token), tostring(check), why or tostring(after), tostring(ensured),
          tostring(released), rerr and (" " .. tostring(rerr)) or "", releasing))
      }
    }
    # what=fenced: fenced writes under two grants; what=mismatch: a semaphore's maximum that is
    # not the stored one; what=status: who holds the name while this request does;
    # what=long: a name over the core's limit; what=unreachable: a server that is not there.
    location = /misc {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local args = ngx.req.get_uri_args()
        local opts = {redis = REDIS_URL, timeout = 1}
        if args.what == "fenced" then
          local a, b = portalock.RedisLock(args.name, opts), portalock.RedisLock(args.name, opts)
          assert(a:acquire())
          local first = a:fenced_write(args.name .. ":data", "a")
          assert(a:release())
          assert(b:acquire())
          local second = b:fenced_write(args.name .. ":data", "b")
          ngx.say(tostring(first), " ", tostring(second), " ", b.token, " ", type(b.token))
          assert(b:release())
        elseif args.what == "mismatch" then
          assert(portalock.RedisSemaphore(args.name, 2, opts):acquire())
          local ok, err = pcall(function()
            local obj = portalock.RedisSemaphore(args.name, 3, opts):acquire()
            return obj
          end)
          ngx.say(tostring(ok), " ", tostring(err))
        elseif args.what == "status" then
          local obj = portalock.RedisLock(args.name, opts)
          assert(obj:acquire())
          local status = assert(obj:status())
          local holder = status.holders[1]
          ngx.say(#status.holders, " ", tostring(holder.token == obj.token), " ",
            type(holder.token), " ", status.waiting, " ", tostring(holder.lease > 0))
          assert(obj:release())
          ngx.say(#assert(obj:status()).holders)
        elseif args.what == "long" then
          local ok, err = pcall(portalock.RedisLock, string.rep("n", core.REDIS_NAME_MAX + 1), opts)
          ngx.say(tostring(ok), " ", tostring(err))
        else
          local obj, err = portalock.RedisLock(args.name, {redis = "redis://127.0.0.1:1/0"}):acquire()
          ngx.say(tostring(obj), " ", tostring(err))
        end
      }
    }
    location = /set_phase {
      set_by_lua_block $result {
        local portalock = require "portalock"
        local ok, err = pcall(function()
          return portalock.RedisLock("set-phase", {redis = REDIS_URL}):acquire()
        end)
        return tostring(ok) .. " " .. tostring(err)
      }
      return 200 "$result\n";
    }
]]

-- Seconds a GET of /ping on worker `pid` took (curl's own measure, from connect to the last
-- byte, of the connection that worker answered).
local function ping_seconds(server, pid)
  return assert(server:request("/ping", {worker = pid})).seconds
end

local function median(values)
  table.sort(values)
  return values[math.ceil(#values / 2)]
end

describe("RedisLock inside nginx #nginx #redis", function()
  local missing = nginx.missing() or redis_fixture.missing()
  if missing then
    pending(missing)
    return
  end

  local fixture = redis_fixture.new("ngx")
  local server

  setup(function()
    fixture:start()
    server = nginx.start({
      init = string.format("REDIS_URL = %q", fixture.url),
      http = "  lua_check_client_abort on;",
      locations = LOCATIONS,
    })
  end)

  teardown(function()
    if server then
      server:stop()
    end
    fixture:close()
  end)

  -- Acquires `name` here, outside nginx, at once (true), or false when it is held.
  local function free_outside(name)
    local l = fixture:lock(name)
    local held = l:acquire(0)
    if held then
      l:release()
    end
    return held ~= nil
  end

  -- The number of waiters queued on the server for `name`.
  local function queued(name)
    local out = fixture.server:cli("ZCARD", "portalock:{" .. name .. "}:queue")
    return tonumber(out)
  end

  it("acquires and releases in a request, with a token, check() and ensure()", function()
    local name = fixture:fresh()
    local body = server:get("/acquire?name=" .. name)
    -- the token a decimal string, as outside nginx (exact on LuaJIT too)
    assert.matches("^acquired [%d.]+ [%d.]+ token=%d+%(string%) check=true after=true ensure=true "
      .. "released=true releasing=[%d.]+\n$", body)
    assert.is_true(free_outside(name))
  end)

  local function escape(s)
    return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
  end

  it("renews its grant every ttl/3 while the request holds it, as the README's ACL user", function()
    local user = fixture:acl_user()
    local url = string.format("redis://%s:%s@127.0.0.1:%d/1", user.username, user.password, user.port)
    local name = fixture:fresh()
    -- held for 3 leases: lost unless renewed
    local holding = server:get_async("/acquire?ttl=0.5&hold=1.5&url=" .. escape(url) .. "&name=" .. name)
    assert.is_true(helper.wait_until(function()
      return fixture.server:cli("-n", "1", "HLEN", "portalock:{" .. name .. "}:holders") == "1\n"
    end, 5))
    assert.matches("^acquired .* check=true after=true ensure=true released=true", (holding()))
  end)

  it("loads the scripts again when the server's script cache was flushed", function()
    local name = fixture:fresh()
    assert.matches("^acquired ", (server:get("/acquire?name=" .. name)))
    assert.are.equal("OK\n", fixture.server:cli("SCRIPT", "FLUSH"))
    assert.matches("^acquired .* ensure=true released=true", (server:get("/acquire?name=" .. name)))
  end)

  it("excludes a holder outside nginx, and the other way round", function()
    local name = fixture:fresh()
    local pid, _, release = fixture:hold_elsewhere(name)
    local body = server:get("/acquire?timeout=0&name=" .. name)
    assert.matches("^AlreadyLocked [%d.]+ RedisLock '" .. (name:gsub("%-", "%%-"))
      .. "' is locked: gave up at the first contention %(timeout 0%)\n$", body)
    redis_fixture.let_go(pid, release)
    local response = server:get_async("/acquire?hold=1&name=" .. name)
    assert.is_true(helper.wait_until(function() return not free_outside(name) end, 5))
    assert.matches("^acquired ", (response()))
    assert.is_true(free_outside(name))
  end)

  -- PUBSUB NUMSUB of `channel`: what Python portalocker counts as holders of a RedisLock.
  local function subscribers(channel)
    local out = fixture.server:cli("PUBSUB", "NUMSUB", channel)
    return tonumber(out:match("\n(%d+)"))
  end

  it("hands the lock from one request to the next as it is released", function()
    local name = fixture:fresh()
    -- both on one worker: one session, which subscribes the lock's name once
    local worker = {worker = server:workers()[1]}
    local first = server:get_async("/acquire?hold=0.6&name=" .. name, worker)
    assert.is_true(helper.wait_until(function() return not free_outside(name) end, 5))
    local second = server:get_async("/acquire?name=" .. name, worker)
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    -- Visible to portalocker as one holder: the worker's session subscribes `name` once.
    assert.are.equal(1, subscribers(name))
    local body1, body2 = assert(first()), assert(second())
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", body1)
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", body2)
    local at1 = tonumber(body1:match("^acquired [%d.]+ ([%d.]+)"))
    local at2 = tonumber(body2:match("^acquired [%d.]+ ([%d.]+)"))
    local released = tonumber(body1:match("releasing=([%d.]+)"))
    -- The second got it after the first's hold, and soon after its release (woken, not polled).
    assert.is_true(at2 - at1 >= 0.6, body1 .. body2)
    assert.is_true(at2 - released < core.REDIS_RECHECK_INTERVAL, body1 .. body2)
    print(string.format("\nhandoff between two requests of one worker: %.1f ms",
      (at2 - released) * 1000))
    assert.are.equal(0, subscribers(name))
  end)

  it("gives up the wait of a request whose client went away", function()
    local name = fixture:fresh()
    local pid, _, release = fixture:hold_elsewhere(name)
    local gone = helper.spawn(helper.peer_env .. "curl -s --max-time 0.5 "
      .. helper.quote(server:url("/acquire?timeout=10&name=" .. name)))
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    assert.is_true(helper.wait_until(function() return not helper.alive(gone) end, 5))
    local aborted = core.monotonic()
    -- Out of the queue, and its subscriptions gone, within the sweep's interval.
    assert.is_true(helper.wait_until(function()
      return queued(name) == 0 and subscribers(name) == 1 -- the holder's, outside nginx
    end, 2))
    print(string.format("\nan aborted waiter left the queue %.3f s after its client went away",
      core.monotonic() - aborted))
    redis_fixture.let_go(pid, release)
    assert.is_true(free_outside(name))
  end)

  -- How many EVALSHA the server has run.
  local function scripts_run()
    local info = fixture.server:cli("INFO", "commandstats")
    return tonumber(info:match("cmdstat_evalsha:calls=(%d+)") or 0)
  end

  it("waits on in a new session when the session is lost while a request waits", function()
    local name = fixture:fresh()
    local pid, _, release = fixture:hold_elsewhere(name)
    local waiting = server:get_async("/acquire?timeout=5&name=" .. name)
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    -- the worker's session: the waiter's channel is "portalock:session:<hex>:<n>"
    local hex = fixture.server:cli("ZRANGE", "portalock:{" .. name .. "}:queue", "0", "0")
      :match("^portalock:session:(%x+):%d+\n$")
    assert.is_truthy(hex)
    local clients = fixture.server:cli("CLIENT", "LIST")
    local id = clients:match("id=(%d+) [^\n]*name=portalock%-" .. hex:sub(1, 16) .. "%-subscription")
    assert.are.equal("1\n", fixture.server:cli("CLIENT", "KILL", "ID", id))
    redis_fixture.let_go(pid, release)
    assert.matches("^acquired .* released=true", (waiting()))
  end)

  it("keeps the worker serving /ping within milliseconds while a request waits", function()
    local name = fixture:fresh()
    local pid, _, release = fixture:hold_elsewhere(name)
    local scripts_before = scripts_run()
    -- the waiter and the pings on one worker: the one whose wait must not block it
    local worker = server:workers()[1]
    local waiting = server:get_async("/acquire?timeout=3&name=" .. name, {worker = worker})
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    local times = {}
    for i = 1, 20 do
      times[i] = ping_seconds(server, worker)
    end
    local slowest = 0
    for _, t in ipairs(times) do
      slowest = math.max(slowest, t)
    end
    print(string.format("\n/ping while a request waits on a RedisLock: median %.1f ms, max %.1f ms",
      median(times) * 1000, slowest * 1000))
    assert.is_true(slowest < 0.2, "slowest /ping " .. slowest)
    assert.matches("^AlreadyLocked [%d.]+ RedisLock .* gave up after the timeout of 3 s\n$", (waiting()))
    -- It was woken or re-checked every REDIS_RECHECK_INTERVAL, not polled: about 30 attempts.
    local attempts = scripts_run() - scripts_before
    print(string.format("grant scripts run in a 3 s wait: %d", attempts))
    assert.is_true(attempts <= 3 / core.REDIS_RECHECK_INTERVAL + 10, "attempts " .. attempts)
    redis_fixture.let_go(pid, release)
  end)

  it("loses a request's grant when the session's subscription ends, and opens a new one", function()
    local name = fixture:fresh()
    local holding = server:get_async("/acquire?hold=1&name=" .. name)
    assert.is_true(helper.wait_until(function() return not free_outside(name) end, 5))
    fixture.server:cli("CLIENT", "KILL", "TYPE", "pubsub")
    local body = assert(holding())
    assert.matches("^acquired .* check=true after=lost ensure=nil released=nil LockException: '"
      .. (name:gsub("%-", "%%-")) .. "' was lost before its release releasing=[%d.]+\n$", body)
    assert.is_true(free_outside(name))
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", (server:get("/acquire?name=" .. name)))
  end)

  it("takes over from a SIGKILLed holder outside nginx as fast as outside nginx", function()
    local name = fixture:fresh()
    local pid = fixture:hold_elsewhere(name)
    local waiting = server:get_async("/acquire?timeout=5&name=" .. name)
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    local killed_at = core.monotonic()
    helper.kill(pid, "KILL")
    local body = assert(waiting())
    local acquired_at = tonumber(body:match("^acquired [%d.]+ ([%d.]+)"))
    assert.is_truthy(acquired_at, body)
    local takeover = acquired_at - killed_at
    print(string.format("\ntakeover after SIGKILL of a holder outside nginx: %.3f s", takeover))
    assert.is_true(takeover <= 0.5, "takeover " .. takeover)
  end)

  it("frees the grant of a request that ended without releasing within 1 s", function()
    local name = fixture:fresh()
    local body = server:get("/acquire?forget=1&name=" .. name)
    local ended = core.monotonic()
    assert.matches("^forgot ", body)
    assert.is_true(helper.wait_until(function() return free_outside(name) end, 3))
    local freed = core.monotonic() - ended
    print(string.format("\na forgotten RedisLock was free %.3f s after its request", freed))
    assert.is_true(freed < 1, "freed after " .. freed)
  end)

  it("counts a RedisSemaphore's permits across requests", function()
    local name = fixture:fresh()
    local a = server:get_async("/acquire?max=2&hold=1&name=" .. name)
    local b = server:get_async("/acquire?max=2&hold=1&name=" .. name)
    assert.is_true(helper.wait_until(function()
      return fixture.server:cli("HLEN", "portalock:{" .. name .. "}:holders") == "2\n"
    end, 5))
    local body = server:get("/acquire?max=2&timeout=0&name=" .. name)
    assert.matches("^AlreadyLocked [%d.]+ RedisSemaphore '.*' has all its 2 permits taken: gave up "
      .. "at the first contention %(timeout 0%)\n$", body)
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", (a()))
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", (b()))
  end)

  it("writes fenced by the grant's token, and raises on a semaphore's wrong maximum", function()
    local name = fixture:fresh()
    local body = server:get("/misc?what=fenced&name=" .. name)
    local token = assert(body:match("^true true (%d+) string\n$"), body)
    -- the newer grant's write is the one stored, with its token
    assert.are.equal("token\n" .. token .. "\nvalue\nb\n",
      fixture.server:cli("HGETALL", name .. ":data"))
    name = fixture:fresh()
    -- raised where acquire was called, with the core's message
    assert.matches("^false content_by_lua.*:%d+: bad argument 'maximum' %(3%): '" .. (name:gsub("%-", "%%-"))
      .. "' is in use with maximum 2 %(every process that holds or waits for it gives that; "
      .. "another maximum is taken once none does%)\n$",
      (server:get("/misc?what=mismatch&name=" .. name)))
  end)

  it("says who holds a name (the STATUS script), and refuses a name over the core's limit", function()
    local name = fixture:fresh()
    -- one holder, whose token is the object's .token; no waiter; none after the release
    assert.are.equal("1 true string 0 true\n0\n", (server:get("/misc?what=status&name=" .. name)))
    assert.matches("^false bad argument 'channel' to 'RedisLock' %(.*%): the RedisLock's name must be "
      .. "at most " .. core.REDIS_NAME_MAX .. " bytes\n$", (server:get("/misc?what=long")))
  end)

  it("hands the lock between requests on two workers: the second gets it when the first releases", function()
    local name = fixture:fresh()
    local workers = server:workers()
    assert.are.equal(2, #workers)
    local first = server:request_async("/acquire?hold=0.6&name=" .. name, {worker = workers[1]})
    assert.is_true(helper.wait_until(function() return not free_outside(name) end, 5))
    local second = server:request_async("/acquire?name=" .. name, {worker = workers[2]})
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    local r1, r2 = assert(first()), assert(second())
    assert.are.same({workers[1], workers[2]}, {r1.pid, r2.pid})
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", r1.body)
    assert.matches("^acquired .* released=true releasing=[%d.]+\n$", r2.body)
    local at1 = tonumber(r1.body:match("^acquired [%d.]+ ([%d.]+)"))
    local at2 = tonumber(r2.body:match("^acquired [%d.]+ ([%d.]+)"))
    local released = tonumber(r1.body:match("releasing=([%d.]+)"))
    -- after the first's hold, and woken by the server at its release (two sessions, one queue)
    assert.is_true(at2 - at1 >= 0.6, r1.body .. r2.body)
    assert.is_true(at2 - released < core.REDIS_RECHECK_INTERVAL, r1.body .. r2.body)
    print(string.format("\nhandoff between requests on two workers: %.1f ms", (at2 - released) * 1000))
  end)

  it("refuses I/O in a phase without cosockets, naming the phase", function()
    local body = server:get("/set_phase")
    assert.matches("^false .*acquire: not available in nginx's 'set' phase", body)
  end)

  it("leaves no error or warning in error.log", function()
    local log = server:error_log()
    for line in log:gmatch("[^\n]+") do
      assert.is_nil(line:find("%[error%]") or line:find("%[warn%]"), line)
    end
  end)

  it("says when the server cannot be reached", function()
    assert.matches("^nil LockException: cannot connect to Redis at 127.0.0.1:1: connection refused\n$",
      (server:get("/misc?what=unreachable&name=" .. fixture:fresh())))
  end)

  -- (after the error.log check: nginx logs each refused connect() of a cosocket)
  it("says that the connection was lost while a request waited, then why a new one failed", function()
    local name = fixture:fresh()
    local pid = fixture:hold_elsewhere(name)
    local waiting = server:get_async("/acquire?timeout=5&name=" .. name)
    assert.is_true(helper.wait_until(function() return queued(name) == 1 end, 5))
    fixture.server:kill()
    local body = waiting()
    helper.kill(pid, "KILL") -- the holder outside nginx, whose server is gone too
    fixture.server:restart()
    local where = "Redis at 127%.0%.0%.1:" .. fixture.server.port
    local reconnecting = body and body:match("; reconnecting: (.*)\n$")
    assert.matches("^LockException [%d.]+ the connection to " .. where .. " was lost while waiting "
      .. "for '" .. (name:gsub("%-", "%%-")) .. "' %([^)]+%); reconnecting: ", body)
    -- the new connection was refused, or accepted and then reset by the server going away
    local refused = reconnecting and reconnecting:match("^cannot connect to " .. where .. ": .+$")
    local reset = reconnecting and reconnecting:match("^the connection to " .. where
      .. " was lost while [^:]+: .+$")
    assert(refused or reset, "reconnecting: " .. tostring(reconnecting))
  end)

  it("lets a graceful stop (nginx -s quit) finish the requests that hold, then exit", function()
    local name = fixture:fresh()
    local holding = server:get_async("/acquire?hold=1.5&ttl=0.6&name=" .. name)
    assert.is_true(helper.wait_until(function() return not free_outside(name) end, 5))
    local workers = server:workers()
    local asked = core.monotonic()
    helper.kill(server.pid, "QUIT")
    -- held (and renewed) to its end, not lost when the worker began to exit
    assert.matches("^acquired .* check=true after=true ensure=true released=true", (holding()))
    assert.is_true(helper.wait_until(function()
      for _, pid in ipairs(workers) do
        if helper.alive(pid) then
          return false
        end
      end
      return true
    end, 5))
    print(string.format("\nworker exited %.3f s after QUIT (a request held 1.5 s)",
      core.monotonic() - asked))
  end)
end)
