-- `portalock lock --redis URL NAME` and `portalock run --redis URL --name NAME -j N`, run as real
-- processes against a real redis-server on loopback (spec/support/redis_server.lua): they
-- exclude each other, -n and -w fail with the conflict code, a lost grant ends CMD with
-- SIGTERM and portalock with exit 75, and the config's redis_lock and redis_semaphore work the
-- same way. Times are bounded widely.
local core = require "portalock.core"
local helper = require "spec.support.helper"
local cli = require "spec.support.cli"
local redis_server = require "spec.support.redis_server"

local quote = helper.quote

if not core.redis_session or redis_server.missing() then
  describe("the portalock command with Redis", function()
    pending(core.redis_session and redis_server.missing()
      or "portalock.core was built without hiredis (libhiredis-dev)")
  end)
  return
end

local LOST = 75

local function check(expected, code, stdout, stderr)
  assert.are.equal(expected, code, cli.describe(code, stdout, stderr))
end

local function contains(text, fragment)
  return text:find(fragment, 1, true) ~= nil
end

describe("the portalock command with Redis", function()
  local server, dir, s
  local serial = 0

  setup(function()
    server = redis_server.start()
  end)

  teardown(function()
    server:close()
  end)

  before_each(function()
    dir = helper.tmpdir()
    s = cli.session(dir)
  end)

  after_each(function()
    s:cleanup()
    helper.rmtree(dir)
  end)

  -- A lock or semaphore name no other test uses.
  local function fresh(prefix)
    serial = serial + 1
    return string.format("cli-%s-%d-%d", prefix, core.getpid(), serial)
  end

  -- A sh script that writes "started" to `ready`, then runs until `go` exists (at most ~20 s)
  -- and exits 0; on SIGTERM it writes "TERM" to `ready` and exits 3.
  local function holder_script(ready, go)
    return "trap 'echo TERM >> " .. quote(ready) .. "; exit 3' TERM; echo started > " .. quote(ready)
      .. "; i=0; while [ ! -e " .. quote(go) .. " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done"
  end

  -- Starts `portalock ARGS... -- sh -c holder_script` and waits until CMD runs; returns the
  -- process, the ready file and the go file.
  local function start_holder(args)
    local ready, go = s:file("ready"), s:file("go")
    local argv = {}
    for i, word in ipairs(args) do
      argv[i] = word
    end
    for _, word in ipairs({"--", "sh", "-c", holder_script(ready, go)}) do
      argv[#argv + 1] = word
    end
    local p = s:spawn(argv)
    assert(helper.wait_until(function() return helper.exists(ready) end, 15),
      "CMD never started: " .. p:stderr())
    return p, ready, go
  end

  describe("lock --redis", function()
    it("runs CMD holding the lock and exits with CMD's status", function()
      local name = fresh("status")
      check(0, s:run({"lock", "--redis", server.url, name, "--", "true"}))
      check(9, s:run({"lock", "--redis", server.url, name, "sh", "-c", "exit 9"}))
      check(8, s:run({"lock", "--redis", server.url, name, "-c", "exit 8"}))
      local code, out, err = s:run({"lock", "--redis", server.url, "-v", name, "--", "echo", "hi"})
      check(0, code, out, err)
      assert.are.equal("hi\n", out)
      assert.matches("^portalock: holding portalock%.RedisLock%('" .. name:gsub("%-", "%%-")
        .. "'%) %(token %d+%) after [%d.]+ s\n$", err)
      -- what holds the lock is portalock's connection: CMD is not given it
      code, out, err = s:run({"lock", "--redis", server.url, name, "--", "no-such-command-x"})
      check(127, code, out, err)
    end)

    it("excludes a second invocation on the same NAME until the first ends", function()
      local name = fresh("exclusive")
      local p, _, go = start_holder({"lock", "--redis", server.url, name})
      local code, out, err = s:run({"lock", "-n", "--redis", server.url, name, "--", "true"})
      check(1, code, out, err)
      assert.are.equal("", err) -- a conflict is silent without -v, as with flock(1)
      code, out, err = s:run({"lock", "-n", "-E", "9", "-v", "--redis", server.url, name, "true"})
      check(9, code, out, err)
      assert.is_true(contains(err, name), err)
      local elapsed
      code, out, err, elapsed = s:run({"lock", "-w", "0.3", "--redis", server.url, name, "true"})
      check(1, code, out, err)
      assert.is_true(elapsed >= 0.3, tostring(elapsed))
      -- another name is free meanwhile
      check(0, s:run({"lock", "-n", "--redis", server.url, fresh("other"), "true"}))
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())
      check(0, s:run({"lock", "-n", "--redis", server.url, name, "true"}))
    end)

    it("lets concurrent invocations run CMD one at a time", function()
      local name, log = fresh("serial"), dir .. "/log"
      local script = "echo start >> " .. quote(log) .. "; sleep 0.2; echo end >> " .. quote(log)
      local procs = {}
      for k = 1, 4 do
        procs[k] = s:spawn({"lock", "--redis", server.url, name, "--", "sh", "-c", script})
      end
      for _, p in ipairs(procs) do
        assert.are.equal(0, p:wait(30), p:stderr())
      end
      assert.are.equal(("start\nend\n"):rep(4), helper.read(log))
    end)

    it("ends CMD with SIGTERM and exits 75 when the lock is lost (CLIENT KILL TYPE pubsub)", function()
      local name = fresh("lost")
      local p, ready = start_holder({"lock", "--redis", server.url, name})
      local killed = core.monotonic()
      local out, code = server:cli("CLIENT", "KILL", "TYPE", "pubsub")
      assert.are.equal(0, code, out)
      assert.are.equal(LOST, p:wait(15), p:stderr())
      assert.is_true(core.monotonic() - killed < 5)
      assert.are.equal("started\nTERM\n", helper.read(ready)) -- CMD got SIGTERM
      assert.matches("portalock: portalock%.RedisLock%('.-'%): lost while CMD ran; CMD was sent "
        .. "SIGTERM\n$", p:stderr())
      -- the lock is free again at once
      check(0, s:run({"lock", "-n", "--redis", server.url, name, "true"}))
    end)

    it("ends CMD with SIGTERM and exits 75 when the server goes away", function()
      local p, ready = start_holder({"lock", "--redis", server.url, fresh("restart")})
      server:kill()
      local code = p:wait(15)
      server:restart()
      assert.are.equal(LOST, code, p:stderr())
      assert.are.equal("started\nTERM\n", helper.read(ready))
    end)

    it("forwards SIGTERM to CMD as for a file lock, and releases when CMD has ended", function()
      local name = fresh("forward")
      local p, ready = start_holder({"lock", "--redis", server.url, name})
      helper.kill(p.pid, "TERM")
      assert.are.equal(3, p:wait(15), p:stderr()) -- CMD's own exit on SIGTERM: not a loss
      assert.are.equal("started\nTERM\n", helper.read(ready))
      assert.are.equal("", p:stderr())
      check(0, s:run({"lock", "-n", "--redis", server.url, name, "true"}))
    end)

    it("refuses a bad URL naming it, and exits 71 when the server cannot be reached", function()
      local code, out, err = s:run({"lock", "--redis", "redis://127.0.0.1:99999/0", "x", "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, [[lock: --redis ("redis://127.0.0.1:99999/0"): the port "99999"]]), err)
      code, out, err = s:run({"lock", "--redis", "http://127.0.0.1/", "x", "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, [[("http://127.0.0.1/")]]), err)
      code, out, err = s:run({"lock", "--redis", "redis://u:secret@127.0.0.1:0/0", "x", "true"})
      check(64, code, out, err)
      assert.is_false(contains(err, "secret"), err) -- a password is never quoted
      code, out, err = s:run({"lock", "--redis", "redis://127.0.0.1:1/0", "x", "true"})
      check(71, code, out, err)
      assert.is_true(contains(err, "127.0.0.1:1"), err)
    end)

    it("refuses the options that do not apply to a Redis lock", function()
      local code, out, err = s:run({"lock", "-s", "--redis", server.url, "x", "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "lock: -s: a Redis lock is always exclusive"), err)
      code, out, err = s:run({"lock", "-F", "--redis", server.url, "x", "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "lock: -F:"), err)
      code, out, err = s:run({"lock", "--redis", server.url, "x"})
      check(64, code, out, err)
      assert.is_true(contains(err, "no command to run"), err)
    end)
  end)

  describe("run --redis", function()
    it("runs at most N commands at once", function()
      local name, log = fresh("seats"), dir .. "/intervals"
      local script = "a=$(date +%s.%N); sleep 0.3; echo \"$a $(date +%s.%N)\" >> " .. quote(log)
      local procs = {}
      for k = 1, 5 do
        procs[k] = s:spawn({"run", "--redis", server.url, "-j", "2", "--name", name, "--", "sh", "-c", script})
      end
      for _, p in ipairs(procs) do
        assert.are.equal(0, p:wait(30), p:stderr())
      end
      local intervals = {}
      for line in helper.read(log):gmatch("[^\n]+") do
        local a, b = line:match("^(%S+) (%S+)$")
        intervals[#intervals + 1] = {tonumber(a), tonumber(b)}
      end
      assert.are.equal(5, #intervals)
      assert.are.equal(2, cli.max_overlap(intervals))
    end)

    it("fails with the conflict code while every permit is held", function()
      local name = fresh("full")
      local p, _, go = start_holder({"run", "--redis", server.url, "--name", name})
      local code, out, err = s:run({"run", "-n", "--redis", server.url, "--name", name, "true"})
      check(1, code, out, err)
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())
      check(0, s:run({"run", "-n", "--redis", server.url, "--name", name, "true"}))
    end)

    it("ends CMD with SIGTERM and exits 75 when the permit is lost", function()
      local p, ready = start_holder({"run", "--redis", server.url, "-j", "3", "--name", fresh("lost")})
      local out, code = server:cli("CLIENT", "KILL", "TYPE", "pubsub")
      assert.are.equal(0, code, out)
      assert.are.equal(LOST, p:wait(15), p:stderr())
      assert.are.equal("started\nTERM\n", helper.read(ready))
    end)

    it("needs --name, takes no --dir, and refuses another maximum for a name in use", function()
      local code, out, err = s:run({"run", "--redis", server.url, "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "run: --redis needs --name NAME"), err)
      code, out, err = s:run({"run", "--redis", server.url, "--name", "x", "--dir", dir, "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "run: --dir:"), err)
      local name = fresh("maximum")
      local p, _, go = start_holder({"run", "--redis", server.url, "-j", "2", "--name", name})
      code, out, err = s:run({"run", "--redis", server.url, "-j", "3", "--name", name, "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "maximum"), err)
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())
    end)
  end)

  describe("with a config", function()
    it("locks a declared redis_lock and runs in a declared redis_semaphore", function()
      local lock_name, sem_name = fresh("declared"), fresh("declared-seats")
      local conf = dir .. "/portalock.lua"
      helper.write(conf, string.format([[
redis "main" { url = %q, ttl = 10 }
redis_lock "job" { redis = "main", channel = %q }
redis_semaphore "seats" { redis = "main", name = %q, maximum = 1, timeout = 0.2 }
]], server.url, lock_name, sem_name))
      local p, _, go = start_holder({"--config", conf, "lock", "job"})
      -- the declared lock is the channel it names, on the server it names
      check(1, s:run({"lock", "-n", "--redis", server.url, lock_name, "true"}))
      check(1, s:run({"--config", conf, "lock", "-n", "job", "true"}))
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())

      p, _, go = start_holder({"--config", conf, "run", "--name", "seats"})
      -- the declared timeout is the default wait
      local code, out, err, elapsed = s:run({"--config", conf, "run", "--name", "seats", "true"})
      check(1, code, out, err)
      assert.is_true(elapsed >= 0.2, tostring(elapsed))
      check(1, s:run({"run", "-n", "--redis", server.url, "--name", sem_name, "true"}))
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())

      code, out, err = s:run({"--config", conf, "lock", "seats", "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "seats is a redis_semaphore, not a lock (use portalock run --name seats)"), err)
      code, out, err = s:run({"--config", conf, "run", "--name", "job", "true"})
      check(64, code, out, err)
      assert.is_true(contains(err, "job is a redis_lock, not a bounded_semaphore or redis_semaphore"), err)
      code, out = s:run({"--config", conf, "status", "job", "seats"})
      check(0, code, out)
      assert.are.equal("job: free [redis]\nseats: free [redis]\n", out)
    end)

    it("reaches a unix socket with a password, from --redis and from a config", function()
      local unix = redis_server.start({unix = true})
      finally(function() unix:close() end)
      local out, code = unix:cli("ACL", "SETUSER", "worker", "on", ">pw&1", "~*", "&*", "+@all")
      assert.are.equal(0, code, out)
      local url = "unix://worker:pw%261@" .. unix.socket .. "?db=0"
      local name = fresh("unix")
      local p, _, go = start_holder({"lock", "--redis", url, name})
      local err
      code, out, err = s:run({"lock", "-n", "--redis", "unix://" .. unix.socket .. "?password=pw%261"
        .. "&username=worker", name, "true"})
      check(1, code, out, err) -- the same lock, reached with the query's form
      code, out, err = s:run({"lock", "-n", "--redis", "unix://worker:wrong@" .. unix.socket, name,
        "true"})
      check(71, code, out, err) -- the password is sent: a wrong one is refused
      assert.is_true(contains(err, "WRONGPASS"), err)
      assert.is_false(contains(err, "wrong"), err)
      local conf = dir .. "/unix.lua"
      helper.write(conf, string.format('redis "u" { url = %q }\nredis_lock "job" { redis = "u", '
        .. 'channel = %q }\n', url, name))
      check(1, s:run({"--config", conf, "lock", "-n", "job", "true"}))
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())
      check(0, s:run({"--config", conf, "lock", "-n", "job", "true"}))
    end)

    -- flock(1) users read `status` as "may I take it now": a held Redis lock is never "free".
    it("status asks the server who holds a declared redis_lock or redis_semaphore", function()
      local lock_name, sem_name = fresh("status"), fresh("status-seats")
      local conf = dir .. "/status.lua"
      helper.write(conf, string.format([[
redis "main" { url = %q }
redis_lock "job" { redis = "main", channel = %q }
redis_semaphore "seats" { redis = "main", name = %q, maximum = 3 }
]], server.url, lock_name, sem_name))
      local p, _, go = start_holder({"--config", conf, "lock", "-v", "job"})
      local token = assert(p:stderr():match("%(token (%d+)%)"), p:stderr())
      local waiter = s:spawn({"--config", conf, "lock", "job", "true"})
      local line
      assert(helper.wait_until(function()
        local code, out = s:run({"--config", conf, "status", "job"})
        line = out
        return code == 1 and out:find(", 1 waiting\n$") ~= nil
      end, 10), line)
      assert.matches("^job: held by portalock%-%x+ %(token " .. token .. "%) %[redis%], 1 waiting\n$",
        line)
      -- the session is the one the server's CLIENT LIST names
      local session = line:match("portalock%-(%x+)")
      local clients = server:cli("CLIENT", "LIST")
      assert.is_truthy(clients:find("name=portalock-" .. session .. "-command", 1, true), clients)
      -- --redis asks that server about NAME, ignoring the config
      local code, out, err = s:run({"status", "--redis", server.url, lock_name})
      check(1, code, out, err)
      assert.matches("^" .. lock_name:gsub("%-", "%%-") .. ": held by portalock%-" .. session, out)
      helper.write(go, "")
      assert.are.equal(0, p:wait(15), p:stderr())
      assert.are.equal(0, waiter:wait(15), waiter:stderr())
      check(0, s:run({"--config", conf, "status", "job"}))

      local seat, _, seat_go = start_holder({"--config", conf, "run", "--name", "seats"})
      code, out, err = s:run({"--config", conf, "status", "seats", "job"})
      check(1, code, out, err)
      assert.matches("^seats: held %(1 of 3%) by portalock%-%x+ %(token %d+%) %[redis%]\njob: free "
        .. "%[redis%]\n$", out)
      helper.write(seat_go, "")
      assert.are.equal(0, seat:wait(15), seat:stderr())

      code, out, err = s:run({"status", "--redis", "redis://127.0.0.1:1/0", "x"})
      check(71, code, out, err)
      assert.is_true(contains(err, "Redis at 127.0.0.1:1"), err)
      code, out, err = s:run({"status", "--redis", "http://x", "x"})
      check(64, code, out, err)
    end)

    it("ignores the config with --redis: NAME is the channel", function()
      local conf = dir .. "/broken.lua"
      helper.write(conf, "lock 'x' {")
      check(0, s:run({"--config", conf, "lock", "--redis", server.url, fresh("nocfg"), "true"}))
      check(78, s:run({"--config", conf, "lock", dir .. "/f", "true"}))
    end)
  end)
end)
