local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"

-- Lua code inside nginx.conf: each handler reports what it saw in the response.
local INIT = [[
  local portalock = require "portalock"
  local core = require "portalock.core"
  local started = core.monotonic()
  local fh, err = portalock.Lock(%q, {timeout = 0.3, check_interval = 0.05}):acquire()
  INIT_RESULT = string.format("%%s %%s %%.3f", ngx.get_phase(), fh and "acquired" or err.kind,
    core.monotonic() - started)
  SHARED_LOCK = portalock.Lock(os.getenv(%q) .. "/shared.lock", {timeout = 3, check_interval = 0.05})
]]

-- Shared by the phases where ngx.sleep is disabled: a blocking acquire of `held`, a
-- fail_when_locked one, and a timeout = 0 one on the free `free`.
local NO_WAIT_PROBE = [[
  local portalock = require "portalock"
  local core = require "portalock.core"
  local function report(started, fh, err)
    if fh then
      return "acquired"
    end
    return string.format("%s %.3f %s", err.kind, core.monotonic() - started, err.message)
  end
  local held, free = ngx.var.arg_held, ngx.var.arg_free
  local started = core.monotonic()
  local blocking = report(started, portalock.Lock(held, {timeout = 5}):acquire())
  local fail_fast = report(started, portalock.Lock(held, {fail_when_locked = true}):acquire())
  local free_lock = portalock.Lock(free)
  local non_blocking = report(started, free_lock:acquire({timeout = 0}))
  free_lock:release()
  local result = table.concat({"phase=" .. ngx.get_phase(), "blocking=" .. blocking,
    "fail_when_locked=" .. fail_fast, "non_blocking=" .. non_blocking}, "|")
]]

local LOCATIONS = [[
    location = /ping {
      content_by_lua_block { ngx.say("pong waiting=", ngx.shared.state:get("waiting") or 0) }
    }
    location = /wait {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local state = ngx.shared.state
        local lock = portalock.Lock(ngx.var.arg_path, {timeout = tonumber(ngx.var.arg_timeout),
          check_interval = 0.05})
        state:incr("waiting", 1, 0)
        local started = core.monotonic()
        local fh, err = lock:acquire()
        local waited = core.monotonic() - started
        state:incr("waiting", -1)
        if fh then
          ngx.say(string.format("acquired %.3f", waited))
          lock:release()
        else
          ngx.say(string.format("%s %.3f %s", err.kind, waited, err.message))
        end
      }
    }
    location = /filter {
      content_by_lua_block { ngx.say("body") }
      header_filter_by_lua_block {
        @PROBE@
        ngx.header["X-Probe"] = result
      }
    }
    location = /logged {
      content_by_lua_block { ngx.say("logged") }
      log_by_lua_block {
        @PROBE@
        ngx.shared.state:set("log_result", result)
      }
    }
    location = /log_result {
      content_by_lua_block { ngx.say(ngx.shared.state:get("log_result") or "none") }
    }
    location = /set {
      set_by_lua_block $probe {
        @PROBE@
        return result
      }
      return 200 "$probe\n";
    }
    location = /init {
      content_by_lua_block { ngx.say(INIT_RESULT) }
    }
    location = /shared_cycle {
      content_by_lua_block {
        local fh, err = SHARED_LOCK:acquire({timeout = 0})
        if not fh then
          ngx.say("failed ", tostring(err))
          return
        end
        local locked = SHARED_LOCK:locked()
        local ok = SHARED_LOCK:release()
        ngx.say("acquired locked=", tostring(locked), " released=", tostring(ok))
      }
    }
    location = /shared_hold {
      content_by_lua_block {
        local state = ngx.shared.state
        assert(SHARED_LOCK:acquire())
        state:set("shared_held", 1)
        ngx.sleep(tonumber(ngx.var.arg_seconds))
        state:set("shared_held", 0)
        assert(SHARED_LOCK:release())
        ngx.say("released")
      }
    }
    location = /shared_state {
      content_by_lua_block { ngx.say("held=", ngx.shared.state:get("shared_held") or 0) }
    }
    location = /shared_take {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local lock = SHARED_LOCK
        if ngx.var.arg_fresh then
          lock = portalock.Lock(ngx.var.arg_path, {timeout = 3, check_interval = 0.05})
        end
        local started = core.monotonic()
        local fh, err = lock:acquire()
        local waited = core.monotonic() - started
        if fh then
          ngx.say(string.format("acquired %.3f", waited))
          lock:release()
        else
          ngx.say(string.format("%s %.3f %s", err.kind, waited, err.message))
        end
      }
    }
]]


local function escape(s)
  return (s:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("portalock inside a real nginx (OpenResty's Lua module)", function()
  local missing = nginx.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local dir, server, init_holder, holders, log_mark
  local held_files = 0

  setup(function()
    dir = helper.tmpdir()
    init_holder = helper.hold("Lock", dir .. "/init-held.lock", dir, {seconds = 60})
    server = nginx.start({
      http = "  lua_shared_dict state 1m;",
      init = string.format(INIT, dir .. "/init-held.lock", nginx.LOCK_DIR_ENV),
      locations = LOCATIONS:gsub("@PROBE@", function() return NO_WAIT_PROBE end),
    })
  end)

  teardown(function()
    if server then
      server:stop()
    end
    if init_holder then
      helper.kill(init_holder)
    end
    helper.rmtree(dir)
  end)

  before_each(function()
    holders = {}
    log_mark = server:log_mark()
  end)

  after_each(function()
    assert.are.same({}, server:log_problems({}, log_mark))
    for _, holder in ipairs(holders) do
      helper.kill(holder.pid)
      helper.rmtree(holder.dir)
    end
  end)

  -- Another process holds a lock on a fresh file the workers can open too; returns its path
  -- and the release file.
  local function held_elsewhere()
    local holder_dir = helper.tmpdir()
    held_files = held_files + 1
    local path = server:lock_file("held." .. held_files .. ".lock")
    local pid = helper.hold("Lock", path, holder_dir, {seconds = 30})
    holders[#holders + 1] = {pid = pid, dir = holder_dir}
    return path, holder_dir .. "/release"
  end

  local function wait_for(path, pattern)
    local body
    local seen = helper.wait_until(function()
      body = server:get(path)
      return body ~= nil and body:find(pattern) ~= nil
    end, 5)
    assert(seen, "never saw " .. pattern .. " at " .. path .. ", last: " .. tostring(body))
    return body
  end

  -- Starts a /wait for `path` on every worker; returns the workers and their responses.
  local function wait_on_each_worker(path, timeout)
    local workers, responses = server:workers(), {}
    for i, pid in ipairs(workers) do
      responses[i] = server:request_async("/wait?timeout=" .. timeout .. "&path=" .. escape(path), {worker = pid})
    end
    wait_for("/ping", "waiting=" .. #workers)
    return workers, responses
  end

  -- The /wait response of `pid`: what it reported, and how long it waited.
  local function waited_on(pid, wait)
    local response = assert(wait(10))
    assert.are.equal(pid, response.pid)
    local outcome, waited, message = response.body:match("^(%a+) ([%d.]+) ?(.*)\n$")
    assert(outcome, response.body)
    return outcome, tonumber(waited), message
  end

  it("yields with ngx.sleep in the content phase: each worker serves other requests during its wait", function()
    local workers, responses = wait_on_each_worker(held_elsewhere(), 3)
    for _, pid in ipairs(workers) do
      local response = assert(server:request("/ping", {worker = pid}))
      assert.are.equal(pid, response.pid)
      assert.are.equal("pong waiting=" .. #workers .. "\n", response.body)
      -- a worker blocked in the wait would answer only once the 3 s are over (response.seconds
      -- is the connection it answered, from connect to last byte)
      local seconds = response.seconds
      assert.is_true(seconds < 1, "a request to " .. pid .. " during its wait took " .. seconds .. " s")
    end

    for i, pid in ipairs(workers) do
      local kind, waited, message = waited_on(pid, responses[i])
      assert.are.equal("AlreadyLocked", kind, message)
      assert.matches("timeout of 3 s", message, 1, true)
      assert.is_true(waited >= 2.5 and waited <= 8, pid .. " waited " .. waited .. " s")
    end
    assert.matches("^pong waiting=0\n$", (server:get("/ping")))
  end)

  it("acquires in the content phase once the other process lets go, on each worker", function()
    local path, release = held_elsewhere()
    local workers, responses = wait_on_each_worker(path, 5)
    helper.sleep(0.5)
    helper.write(release, "")
    for i, pid in ipairs(workers) do
      local outcome, waited, message = waited_on(pid, responses[i])
      assert.are.equal("acquired", outcome, message)
      assert.is_true(waited >= 0.4 and waited < 5, pid .. " waited " .. waited .. " s")
    end
  end)

  describe("where ngx.sleep is disabled", function()
    local function check_probe(result, phase)
      assert(result, "no probe result")
      local fields = {}
      for item in result:gmatch("[^|]+") do
        local key, value = item:match("^([%w_]+)=(.*)$")
        fields[key] = value
      end
      assert.are.equal(phase, fields.phase, result)
      local kind, seconds, message = fields.blocking:match("^(%a+) ([%d.]+) (.*)$")
      assert.are.equal("LockException", kind, result)
      assert.matches("in the '" .. phase .. "' phase", message, 1, true)
      assert.is_true(tonumber(seconds) < 0.5, "the blocking attempt took " .. seconds .. " s")
      assert.matches("^AlreadyLocked .*fail_when_locked", fields.fail_when_locked)
      assert.are.equal("acquired", fields.non_blocking)
    end

    local function query()
      return "?held=" .. escape(held_elsewhere()) .. "&free=" .. escape(server.lock_dir .. "/free.lock")
    end

    it("fails at once in header_filter, naming the phase; non-blocking attempts still work", function()
      local body, headers = server:get("/filter" .. query())
      assert.are.equal("body\n", body)
      check_probe(headers["x-probe"], "header_filter")
    end)

    it("fails at once in log, naming the phase; non-blocking attempts still work", function()
      assert.are.equal("logged\n", (server:get("/logged" .. query())))
      check_probe(wait_for("/log_result", "phase=log"):match("^(.-)\n$"), "log")
    end)

    it("fails at once in set_by_lua, naming the phase; non-blocking attempts still work", function()
      local body = server:get("/set" .. query())
      check_probe(body and body:match("^(.-)\n$"), "set")
    end)
  end)

  describe("init_by_lua", function()
    it("blocks in a wait (nginx serves nothing yet)", function()
      local phase, kind, waited = assert(server:get("/init")):match("^(%S+) (%S+) ([%d.]+)\n$")
      assert.are.equal("init", phase)
      assert.are.equal("AlreadyLocked", kind)
      assert.is_true(tonumber(waited) >= 0.25, "waited " .. waited .. " s")
    end)

    it("makes Lock objects that work in the worker", function()
      assert.are.equal("acquired locked=true released=true\n", (server:get("/shared_cycle")))
    end)
  end)

  describe("two requests of one worker contending", function()
    local function contend(take)
      local worker = server:workers()[1]
      -- held for 1.5 s: however slowly the second request arrives, it still finds it held
      local response = server:get_async("/shared_hold?seconds=1.5", {worker = worker})
      wait_for("/shared_state", "held=1")
      local taken = assert(server:request(take, {worker = worker}))
      assert.are.equal(worker, taken.pid)
      local waited = tonumber(taken.body:match("^acquired ([%d.]+)\n$"))
      assert(waited, taken.body)
      assert.is_true(waited >= 0.05 and waited < 5, "waited " .. waited .. " s")
      assert.are.equal("released\n", (response(10)))
      assert.matches("held=0", (server:get("/shared_state")))
    end

    it("for one Lock object: the second waits, yielding, until the first releases", function()
      contend("/shared_take")
    end)

    it("through two Lock objects on one file: the second waits until the first releases", function()
      contend("/shared_take?fresh=1&path=" .. escape(server.lock_dir .. "/shared.lock"))
    end)
  end)
end)
