-- The Redis fault suite's own tools: the checker on hand-made logs, and the redis-server
-- launcher and the TCP proxy against a real redis-server.
local core = require "portalock.core"
local helper = require "spec.support.helper"
local checker = require "spec.support.redis_checker"
local redis_server = require "spec.support.redis_server"
local tcp_proxy = require "spec.support.tcp_proxy"

describe("the Redis fault suite's checker", function()
  local dir

  before_each(function()
    dir = helper.tmpdir()
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  -- Writes the lines as a log and checks it.
  local function check(lines, opts)
    helper.write(dir .. "/log", table.concat(lines, "\n") .. "\n")
    return checker.check(dir .. "/log", opts)
  end

  -- A pattern for how the checker names a line: "line N (EVENT TIME pid PID token TOKEN)".
  local function at(n, event, pid, token)
    return string.format("line %d %%(%s [%%d.]+ pid %d token %s%%)", n, event, pid, token)
  end

  local function fails(pattern, lines, opts)
    local report, err = check(lines, opts)
    assert.is_nil(report)
    assert.matches(pattern, err)
  end

  it("passes holders that take turns with increasing tokens and report what they wrote", function()
    local report = assert(check({
      "grant 1.0 100 7", "write_ok 1.1 100 7", "release 1.2 100 7",
      "grant 1.3 101 8", "write_ok 1.4 101 8", "release 1.5 101 8",
      "grant 1.5 100 12", "release 1.9 100 12",
    }))
    assert.are.same({3, 3, 2, 1}, {report.grants, report.release, report.write_ok, report.peak})
    assert.are.equal(8, #report.events)
  end)

  it("orders lines by time, not by their place in the file", function()
    local report = assert(check({"grant 1.3 101 8", "release 1.5 101 8", "grant 1.0 100 7", "release 1.2 100 7"}))
    assert.are.same({7, 8}, {report.events[1].token, report.events[3].token})
  end)

  it("fails two holders at once, naming both grants", function()
    fails("2 holders at once %(maximum 1%): " .. at(1, "grant", 100, 7) .. " until line 3; "
      .. at(2, "grant", 101, 8) .. " until line 4", {
        "grant 1.0 100 7", "grant 1.1 101 8", "release 1.2 100 7", "release 1.3 101 8",
      })
  end)

  it("counts a grant that never ended as held to the end", function()
    fails(at(1, "grant", 100, 7) .. " never ended", {"grant 1.0 100 7", "grant 2.0 101 8", "release 2.1 101 8"})
  end)

  it("ends a killed holder's grant where the spec killed it", function()
    local report = assert(check({"grant 1.0 100 7", "killed 1.5 100 -", "grant 1.6 101 8", "release 1.7 101 8"}))
    assert.are.same({2, 1, 1}, {report.grants, report.killed, report.peak})
  end)

  it("fails a token that does not increase, naming both lines", function()
    fails(at(3, "grant", 101, 7) .. ": token 7 was already granted at " .. at(1, "grant", 100, 7), {
      "grant 1.0 100 7", "release 1.1 100 7", "grant 1.2 101 7", "release 1.3 101 7",
    })
    fails(at(3, "grant", 101, 5) .. ": token not above " .. at(1, "grant", 100, 9), {
      "grant 1.0 100 9", "release 1.1 100 9", "grant 1.2 101 5", "release 1.3 101 5",
    })
  end)

  it("allows a semaphore its maximum of holders, and not one more", function()
    local lines = {"grant 1.0 100 1", "grant 1.1 101 2", "grant 1.2 102 3", "release 1.3 100 1",
      "grant 1.4 103 4", "release 1.5 101 2", "release 1.6 102 3", "release 1.7 103 4"}
    assert.are.equal(3, assert(check(lines, {maximum = 3})).peak)
    fails("3 holders at once %(maximum 2%): line 1 .*; line 2 .*; line 3 ", lines, {maximum = 2})
  end)

  it("lets a semaphore's concurrent grants be logged out of token order", function()
    -- 101 was granted 3 before 100 got 2 logged: neither had asked after the other's grant.
    assert(check({"grant 1.0 101 3", "grant 1.1 100 2", "release 1.2 100 2", "release 1.3 101 3"}, {maximum = 3}))
  end)

  it("fails a semaphore's token below one granted before its holder asked", function()
    fails(at(4, "grant", 100, 2) .. ": token not above " .. at(2, "grant", 101, 3)
      .. ", granted before this holder asked", {
        "grant 1.0 100 1", "grant 1.1 101 3", "release 1.2 100 1", "grant 2.0 100 2",
        "release 2.1 100 2", "release 2.2 101 3",
      }, {maximum = 3})
    fails(at(2, "grant", 101, 4) .. ": token 4 was already granted at " .. at(1, "grant", 100, 4),
      {"grant 1.0 100 4", "grant 1.1 101 4", "release 1.2 100 4", "release 1.3 101 4"}, {maximum = 3})
  end)

  -- A holder paused past its lease (pid 100): 101 takes over, then 100 wakes up.
  local paused = {"grant 1.0 100 7", "write_ok 1.1 100 7", "grant 3.0 101 8", "write_ok 3.1 101 8"}

  it("passes a paused holder that reports lost and whose next write is rejected", function()
    local lines = {(table.unpack or unpack)(paused)}
    lines[#lines + 1] = "lost 4.0 100 7"
    lines[#lines + 1] = "write_rejected 4.1 100 7"
    lines[#lines + 1] = "release 4.2 101 8"
    local report = assert(check(lines, {lost_before_stale_write = true}))
    assert.are.same({1, 1, 1}, {report.lost, report.write_rejected, report.peak})
  end)

  it("fails a stale write that was accepted, naming it and the newer grant", function()
    local lines = {(table.unpack or unpack)(paused)}
    lines[#lines + 1] = "lost 4.0 100 7"
    lines[#lines + 1] = "write_ok 4.1 100 7"
    lines[#lines + 1] = "release 4.2 101 8"
    fails(at(6, "write_ok", 100, 7) .. ": a write with an old token accepted after " .. at(3, "grant", 101, 8), lines)
  end)

  it("fails a stale holder that wrote before it reported lost, when asked to", function()
    local lines = {(table.unpack or unpack)(paused)}
    lines[#lines + 1] = "write_rejected 4.0 100 7"
    lines[#lines + 1] = "lost 4.1 100 7"
    lines[#lines + 1] = "release 4.2 101 8"
    assert(check(lines))
    fails(at(5, "write_rejected", 100, 7) .. ": written after " .. at(3, "grant", 101, 8)
      .. " before its writer reported lost",
      lines, {lost_before_stale_write = true})
  end)

  it("fails a release or a second grant that does not match what the pid holds", function()
    fails(at(2, "release", 100, 8) .. ": pid 100 does not hold token 8", {"grant 1.0 100 7", "release 1.1 100 8"})
    fails(at(2, "grant", 100, 8) .. ": granted while " .. at(1, "grant", 100, 7) .. " is still held",
      {"grant 1.0 100 7", "grant 1.1 100 8"})
  end)

  it("names a malformed line", function()
    fails('line 2 is malformed: "grant 1.1 101"', {"grant 1.0 100 7", "grant 1.1 101", "release 1.2 100 7"})
    fails('line 1 is malformed: "held 1.0 100 7"', {"held 1.0 100 7"})
  end)

  it("records a token of Redis's size with all its digits, also on Lua 5.1 and LuaJIT", function()
    local log, token = dir .. "/tokens", 1796614140870293 -- a real token: microseconds since 1970
    checker.record(log, "grant", token, 100)
    checker.record(log, "release", token, 100)
    local report = assert(checker.check(log))
    assert.are.equal(token, report.events[1].token)
  end)

  it("records whole lines from concurrent processes", function()
    local log, pids = dir .. "/log", {}
    local code = "local checker = require 'spec.support.redis_checker' for i = 1, 300 do "
      .. "checker.record(..., i % 2 == 0 and 'write_ok' or 'write_rejected', i) end"
    for i = 1, 4 do
      pids[i] = helper.spawn(helper.lua_command(code, log))
    end
    assert.is_true(helper.wait_until(function()
      for _, pid in ipairs(pids) do
        if helper.alive(pid) then
          return false
        end
      end
      return true
    end, 30))
    local events = assert(checker.parse(log))
    assert.are.equal(1200, #events)
    local per_pid = {}
    for _, e in ipairs(events) do
      per_pid[e.pid] = (per_pid[e.pid] or 0) + 1
    end
    for _, pid in ipairs(pids) do
      assert.are.equal(300, per_pid[pid])
    end
  end)
end)

describe("a real redis-server for the specs", function()
  local missing = redis_server.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  -- A raw RESP client on its own connection (no reconnecting library in the way), run as
  -- python3 -c PROBE PORT TIMEOUT DIR STEP...: "ping" sends PING and prints the reply (or
  -- "timeout", "reset", "closed"), "read" prints the next reply without sending, any other
  -- step waits for the file DIR/STEP.
  local PROBE = [[
import os, socket, sys, time
port, timeout, gates = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
def reply():
    try:
        data = s.recv(64)
        return data.decode().strip() if data else "closed"
    except socket.timeout:
        return "timeout"
    except ConnectionError:
        return "reset"
for step in sys.argv[4:]:
    if step in ("ping", "read"):
        try:
            if step == "ping":
                s.sendall(b"PING\r\n")
            print(reply(), flush=True)
        except ConnectionError:
            print("reset", flush=True)
    else:
        while not os.path.exists(os.path.join(gates, step)):
            time.sleep(0.01)
]]

  local dir, probes

  before_each(function()
    dir, probes = helper.tmpdir(), 0
  end)

  after_each(function()
    tcp_proxy.close_all()
    redis_server.close_all()
    helper.rmtree(dir)
  end)

  -- Starts the probe in the background: returns next(), which waits for its next line, and
  -- open(gate), which lets it past a gate step.
  local function probe(port, timeout, ...)
    local parts = {helper.peer_env .. "timeout -k 1 30", helper.quote(helper.python), "-c", helper.quote(PROBE),
      tostring(port), tostring(timeout), helper.quote(dir)}
    for i = 1, select("#", ...) do
      parts[#parts + 1] = helper.quote((select(i, ...)))
    end
    probes = probes + 1
    local out = dir .. "/probe." .. probes
    helper.spawn(table.concat(parts, " "), out)
    local seen = 0
    local function next_line()
      local line
      assert(helper.wait_until(function()
        local n = 0
        for l in (helper.read(out) or ""):gmatch("([^\n]*)\n") do
          n = n + 1
          if n == seen + 1 then
            line = l
          end
        end
        return line ~= nil
      end, 15), "the probe printed no line " .. (seen + 1) .. ": " .. tostring(helper.read(out)))
      seen = seen + 1
      return line
    end
    local function open(gate)
      helper.write(dir .. "/" .. gate, "")
    end
    return next_line, open
  end

  local function ping(server)
    return (server:cli("PING"))
  end

  it("starts on a port of its own, answers, and leaves nothing behind when closed", function()
    local server = redis_server.start()
    assert.are_not.equal(6379, server.port)
    assert.are.equal("redis://127.0.0.1:" .. server.port .. "/0", server.url)
    assert.are.equal("PONG\n", ping(server))
    assert.matches("process_id:" .. server.pid .. "\r?\n", (server:cli("INFO", "server")))
    assert.are.equal("save\n\n", (server:cli("CONFIG", "GET", "save")))
    assert.are.equal("appendonly\nno\n", (server:cli("CONFIG", "GET", "appendonly")))
    local pid, server_dir = server.pid, server.dir
    server:close()
    assert.is_false(helper.alive(pid))
    assert.is_false(helper.exists(server_dir))
    server:close()
  end)

  it("gives two servers two ports, and closes every server left open on close_all()", function()
    local a = redis_server.start()
    local b = redis_server.start()
    local proxy = tcp_proxy.start(a.port)
    assert.are_not.equal(a.port, b.port)
    assert.are.equal("PONG\n", ping(a))
    assert.are.equal("PONG\n", ping(b))
    redis_server.close_all()
    tcp_proxy.close_all()
    for _, pid in ipairs({a.pid, b.pid, proxy.pid}) do
      assert.is_false(helper.alive(pid))
    end
  end)

  it("restarts a killed server on the same port, without its data", function()
    local server = redis_server.start()
    local port, pid = server.port, server.pid
    assert.are.equal("OK\n", (server:cli("SET", "k", "v")))
    server:kill()
    assert.is_false(helper.alive(pid))
    local _, code = server:cli("PING")
    assert.are_not.equal(0, code)
    server:restart()
    assert.are.same({port, "PONG\n", "\n"}, {server.port, ping(server), (server:cli("GET", "k"))})
    assert.are_not.equal(pid, server.pid)
  end)

  it("with rdb, writes its data on SIGTERM and loads it on restart", function()
    local server = redis_server.start({rdb = true})
    assert.are.equal("OK\n", (server:cli("SET", "k", "v")))
    server:stop()
    assert.is_true(helper.exists(server.dir .. "/dump.rdb"))
    server:restart()
    assert.are.equal("v\n", (server:cli("GET", "k")))
  end)

  it("pauses its clients with CLIENT PAUSE", function()
    local server = redis_server.start()
    server:pause(0.5)
    local started = core.monotonic()
    assert.are.equal("OK\n", (server:cli("SET", "k", "v")))
    assert.is_true(core.monotonic() - started >= 0.4)
  end)

  it("sleeps with DEBUG SLEEP in the background", function()
    local server = redis_server.start({debug = true})
    local started = core.monotonic()
    local done = server:debug_sleep(0.6)
    assert.is_true(core.monotonic() - started < 0.5, "debug_sleep() waited for the sleep")
    assert.are.equal("PONG\n", ping(server))
    assert.is_true(core.monotonic() - started >= 0.5, "PING was answered during DEBUG SLEEP")
    assert.are.equal("OK\n", done())
  end)

  describe("behind the TCP proxy", function()
    local server, proxy

    before_each(function()
      server = redis_server.start()
      proxy = tcp_proxy.start(server.port)
    end)

    it("forwards every connection", function()
      assert.are_not.equal(server.port, proxy.port)
      local next_line = probe(proxy.port, 5, "ping", "ping")
      assert.are.same({"+PONG", "+PONG"}, {next_line(), next_line()})
      local out = helper.capture(helper.peer_env .. "redis-cli -p " .. proxy.port .. " PING")
      assert.are.equal("PONG\n", out)
    end)

    it("resets every connection on reset, and takes new ones after", function()
      local next_line, open = probe(proxy.port, 5, "ping", "cut", "ping")
      assert.are.equal("+PONG", next_line())
      proxy:reset()
      open("cut")
      assert.are.equal("reset", next_line())
      assert.are.equal("+PONG", probe(proxy.port, 5, "ping")())
    end)

    it("partitions without closing on blackhole, and delivers again on heal", function()
      local next_line, open = probe(proxy.port, 0.5, "ping", "cut", "ping", "healed", "read")
      assert.are.equal("+PONG", next_line())
      proxy:blackhole()
      open("cut")
      assert.are.equal("timeout", next_line())
      -- A connection made during the partition is accepted and waits too.
      local late_line = probe(proxy.port, 0.5, "ping", "healed", "read")
      assert.are.equal("timeout", late_line())
      proxy:heal()
      open("healed")
      -- The PINGs sent during the partition are answered.
      assert.are.same({"+PONG", "+PONG"}, {next_line(), late_line()})
    end)

    it("closes its clients' connections when the server dies, and forwards to its restart", function()
      local next_line, open = probe(proxy.port, 5, "ping", "killed", "read")
      assert.are.equal("+PONG", next_line())
      server:kill()
      open("killed")
      assert.are.equal("closed", next_line())
      server:restart()
      assert.are.equal("+PONG", probe(proxy.port, 5, "ping")())
    end)
  end)
end)
