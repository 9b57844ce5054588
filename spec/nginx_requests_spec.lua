--- Issue 17's integration scenarios in a real nginx (spec/support/nginx.lua: two workers, as
--- nobody when the specs run as root, their locks in server.lock_dir, portalock loaded in
--- init_by_lua so that the workers share the board of first waiters): a request owns its holds
--- and they end with it, light threads of one request are owners of their own, waiters are
--- served in arrival order under `ab` load, fail_when_locked attempts stay fast, client aborts
--- leave nothing behind, and error.log stays free of warnings. The handlers record what they
--- measure with spec.support.nginx_stats; the spec reads it with server:stats.
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"
local nginx_load = require "spec.support.nginx_load"

-- error.log entries at [warn] or worse that a test provokes on purpose carry this text.
local DELIBERATE = "portalock-spec: deliberate error"
-- A forgotten hold must be free for the next request within this of its request's end.
local FORGOTTEN_BOUND = 1
-- The fairness scenario (issue 17 item 6): two slots, a 50 ms hold, 600 requests at
-- concurrency 20. The fair-share wait is (20 / 2 - 1) * 0.05 s = 0.45 s; the target is twice that.
local FAIR = {slots = 2, hold = 0.05, requests = 600, concurrency = 20, p99 = 1.0}
-- fail_when_locked tries on a lock held elsewhere, per worker, and their p99 bound (item 4).
local FAIL_FAST = {tries = 50, p99 = 0.001}
-- Client aborts (item 3): how many waiters the client abandons, how long after sending each,
-- and how soon the workers' descriptors and inotify instances must be back to what they were.
local ABORTED = {waiters = 200, after_ms = 200, settle = 2}
-- A request that holds a lock is abandoned this long after it was sent.
local ABORTED_HOLD_MS = 300

local INIT = [[
  -- Loaded here, in the master, portalock maps the board its workers' first waiters share.
  local portalock = require "portalock"
  LOCK_DIR = os.getenv("@LOCK_DIR_ENV@")
  -- One object per worker, shared by its requests: the object a request forgets. Its file is
  -- created by the first worker that acquires it.
  FORGOTTEN = portalock.Lock(LOCK_DIR .. "/forgotten.lock", {timeout = 3})
]]

-- A shared dict for the fairness scenario's count of requests inside the semaphore.
local HTTP = "  lua_shared_dict portalock_requests_spec 1m;"

local LOCATIONS = [[
    location = /board {
      content_by_lua_block {
        ngx.print(require("portalock.nginx_board").post_for("probe") and "board" or "no board")
      }
    }
    location = /forget {
      content_by_lua_block {
        local how = ngx.var.arg_how
        if how == "pcall" then
          local ok, err = pcall(function()
            assert(FORGOTTEN:acquire())
            error("]] .. DELIBERATE .. [[ (caught)")
          end)
          ngx.say("caught ", tostring(ok and "nothing" or err))
          return
        end
        assert(FORGOTTEN:acquire())
        if how == "error" then
          error("]] .. DELIBERATE .. [[ (uncaught)")
        end
        ngx.say("held")
      }
    }
    location = /take_forgotten {
      content_by_lua_block {
        local core = require "portalock.core"
        local started = core.monotonic()
        local fh, err = FORGOTTEN:acquire()
        require("spec.support.nginx_stats").record("taken_wait", core.monotonic() - started)
        if fh then
          assert(FORGOTTEN:release())
        end
        ngx.say(fh and "acquired" or err.kind .. " " .. err.message)
      }
    }
    location = /take {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local lock = portalock.Lock(LOCK_DIR .. "/" .. ngx.var.arg_name, {timeout = tonumber(ngx.var.arg_timeout)})
        local started = core.monotonic()
        local fh, err = lock:acquire()
        require("spec.support.nginx_stats").record("taken_wait", core.monotonic() - started)
        if fh then
          assert(lock:release())
        end
        ngx.say(fh and "acquired" or err.kind .. " " .. err.message)
      }
    }
    location = /threads {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local class = ngx.var.arg_class
        local lock = portalock[class](LOCK_DIR .. "/threads." .. class, {timeout = 3})
        local events = {}
        local depth = class == "RLock" and 2 or 1
        local first = ngx.thread.spawn(function()
          for _ = 1, depth do
            assert(lock:acquire())
          end
          events[#events + 1] = "first acquired x" .. depth
          for i = depth, 1, -1 do
            ngx.sleep(0.1)
            events[#events + 1] = "first releases, " .. (i - 1) .. " left"
            assert(lock:release())
          end
        end)
        local second = ngx.thread.spawn(function()
          local started = core.monotonic()
          for _ = 1, depth do
            local fh, err = lock:acquire()
            if not fh then
              events[#events + 1] = "second failed: " .. tostring(err)
              return
            end
          end
          require("spec.support.nginx_stats").record("threads_wait", core.monotonic() - started)
          events[#events + 1] = "second acquired x" .. depth
          for _ = 1, depth do
            assert(lock:release())
          end
        end)
        assert(ngx.thread.wait(first))
        assert(ngx.thread.wait(second))
        ngx.say(table.concat(events, "\n"))
      }
    }
    location = /fair {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local stats = require "spec.support.nginx_stats"
        local inside = ngx.shared.portalock_requests_spec
        local sem = portalock.NamedBoundedSemaphore(]] .. FAIR.slots .. [[, {name = "fair", directory = LOCK_DIR})
        local started = core.monotonic()
        local slot, err = sem:acquire()
        local waited = core.monotonic() - started
        if not slot then
          stats.record("fair_timeout", waited)
          ngx.status = 503
          ngx.say(err.kind, " ", err.message)
          return
        end
        stats.record("fair_inside", inside:incr("inside", 1, 0))
        ngx.sleep(]] .. FAIR.hold .. [[)
        inside:incr("inside", -1)
        assert(sem:release())
        stats.record("fair_wait." .. ngx.worker.pid(), waited)
        ngx.say("ok")
      }
    }
    location = /fail_fast {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local stats = require "spec.support.nginx_stats"
        local lock = portalock.Lock(LOCK_DIR .. "/" .. ngx.var.arg_name, {fail_when_locked = true})
        local tries = tonumber(ngx.var.arg_tries)
        for _ = 1, tries do
          local started = core.monotonic()
          local fh, err = lock:acquire()
          stats.record("fail_fast", core.monotonic() - started)
          if fh or err.kind ~= "AlreadyLocked" then
            ngx.say(fh and "acquired" or err.kind .. " " .. err.message)
            return
          end
        end
        ngx.say("failed ", tries)
      }
    }
    location = /abort_wait {
      lua_check_client_abort on;
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local stats = require "spec.support.nginx_stats"
        local lock = portalock.Lock(LOCK_DIR .. "/" .. ngx.var.arg_name, {timeout = tonumber(ngx.var.arg_timeout)})
        stats.record("abort_started", ngx.worker.pid())
        local started = core.monotonic()
        local fh, err = lock:acquire()
        stats.record("abort_finished", core.monotonic() - started)
        if fh then
          assert(lock:release())
        end
        ngx.say(fh and "acquired" or err.kind .. " " .. err.message)
      }
    }
    location = /shared_semaphore {
      content_by_lua_block {
        local sem = require("portalock").NamedBoundedSemaphore(2, {name = "shared", directory = LOCK_DIR})
        assert(sem:acquire())
        local _, ok, message = ngx.thread.wait(ngx.thread.spawn(function()
          return pcall(sem.acquire, sem)
        end))
        assert(sem:release())
        ngx.say(tostring(ok), " ", tostring(message))
      }
    }
    location = /release_in_log {
      content_by_lua_block {
        local portalock = require "portalock"
        ngx.ctx.lock = portalock.Lock(LOCK_DIR .. "/" .. ngx.var.arg_name, {timeout = 3})
        assert(ngx.ctx.lock:acquire())
        ngx.say("held")
      }
      log_by_lua_block {
        local ok, err = ngx.ctx.lock:release()
        if not ok then
          ngx.log(ngx.ERR, "release in log_by_lua: ", tostring(err))
        end
        require("spec.support.nginx_stats").record("log_release", ok and 1 or 0)
      }
    }
    location = /abort_hold {
      lua_check_client_abort on;
      content_by_lua_block {
        local portalock = require "portalock"
        local lock = portalock.Lock(LOCK_DIR .. "/" .. ngx.var.arg_name, {timeout = 3})
        assert(lock:acquire())
        require("spec.support.nginx_stats").record("abort_holding", ngx.worker.pid())
        ngx.sleep(5)
        assert(lock:release())
        ngx.say("released")
      }
    }
]]

local function figures(summary)
  return string.format("%d values, p50 %.3f, p90 %.3f, p99 %.3f, max %.3f", summary.count, summary.p50,
    summary.p90, summary.p99, summary.max)
end

local function show(census_of)
  local parts = {}
  for pid, counts in pairs(census_of) do
    parts[#parts + 1] = string.format("%d: %d fds, %d inotify", pid, counts.fds, counts.inotify)
  end
  table.sort(parts)
  return table.concat(parts, "; ")
end

describe("portalock and nginx requests (issue 17) #nginx", function()
  local missing = nginx.missing() or nginx_load.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local server, pids, mark, holders

  setup(function()
    server = nginx.start({http = HTTP, init = (INIT:gsub("@LOCK_DIR_ENV@", nginx.LOCK_DIR_ENV)),
      locations = LOCATIONS})
    pids = server:workers()
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  before_each(function()
    holders = {}
    mark = server:log_mark()
  end)

  after_each(function()
    for _, holder in ipairs(holders) do
      helper.kill(holder.pid)
      helper.rmtree(holder.dir)
    end
    -- issue 17 item 5 (no "ngx.sleep(0) called without delayed events patch") and the rest
    local problems = server:log_problems({(DELIBERATE:gsub("%p", "%%%0"))}, mark)
    assert.are.equal(0, #problems, #problems .. " error.log entries at [warn] or worse, the first:\n"
      .. table.concat(problems, "\n", 1, math.min(#problems, 3)))
  end)

  -- The response to GET `path` from worker `pid` (any status).
  local function on(pid, path)
    local response, output = server:request(path, {worker = pid})
    assert(response, "no response to " .. path .. ": " .. tostring(output))
    assert.are.equal(pid, response.pid, "worker " .. pid .. " did not answer " .. path .. ":\n" .. response.head)
    return response
  end

  -- The one value the handlers recorded in `series` since it was last read.
  local function only(series)
    local values = server:stats(series)
    assert.are.equal(1, #values, series .. ": " .. table.concat(values, ", "))
    return values[1]
  end

  -- Another process holds a Lock on `name` in the workers' lock directory; returns the file
  -- that lets it go and its pid.
  local function held_elsewhere(name)
    local holder_dir = helper.tmpdir()
    local pid = helper.hold("Lock", server:lock_file(name), holder_dir, {seconds = 30})
    holders[#holders + 1] = {pid = pid, dir = holder_dir}
    return holder_dir .. "/release", pid
  end

  it("runs two workers" .. (nginx.as_root() and ", as " .. nginx.WORKER_USER or ""), function()
    assert.are.equal(2, #pids)
    local expected = helper.capture("id -u " .. (nginx.as_root() and nginx.WORKER_USER or "")):match("%d+")
    for _, pid in ipairs(pids) do
      assert.are.equal(expected, helper.read("/proc/" .. pid .. "/status"):match("\nUid:%s+(%d+)"))
    end
  end)

  describe("a Lock a request forgets (made in init_by_lua, one object per worker)", function()
    -- Every (holding worker, taking worker) pair: the taker acquires within FORGOTTEN_BOUND
    -- of the holder's response, neither "this owner already holds it" nor a full timeout.
    local function forget_then_take(how, expected_status)
      local longest = 0
      for round = 0, 3 do
        local holder, taker = pids[round % 2 + 1], pids[math.floor(round / 2) + 1]
        local forgot = on(holder, "/forget?how=" .. how)
        assert.are.equal(expected_status, forgot.status, forgot.body)
        local took = on(taker, "/take_forgotten")
        local waited = only("taken_wait")
        local pair = string.format("round %d (%d then %d)", round, holder, taker)
        assert.are.equal("acquired\n", took.body, pair)
        assert.is_true(waited <= FORGOTTEN_BOUND, string.format("%s: waited %.3f s", pair, waited))
        longest = math.max(longest, waited)
      end
      print(string.format("\n  forgotten (%s): the next request waited at most %.3f s", how, longest))
    end

    it("is free for the next request on either worker after the request returned", function()
      forget_then_take("return", 200)
    end)

    it("is free for the next request on either worker after an error caught by pcall", function()
      forget_then_take("pcall", 200)
    end)

    it("is free for the next request on either worker after an uncaught error (a 500)", function()
      forget_then_take("error", 500)
    end)
  end)

  it("says to make one semaphore object per request when a second acquire shares one", function()
    local body = on(pids[1], "/shared_semaphore").body
    assert.matches("^false .*already holds slot %d", body)
    assert.is_truthy(body:find("inside nginx, make the object in the request handler: one object "
      .. "holds one slot", 1, true), body)
  end)

  it("releases a lock in log_by_lua that the request took in its content phase", function()
    for _, pid in ipairs(pids) do
      assert.are.equal(200, on(pid, "/release_in_log?name=log.lock").status)
      assert.are.equal(1, only("log_release"))
      assert.are.equal("acquired\n", on(pid, "/take?name=log.lock&timeout=0").body)
      only("taken_wait")
    end
  end)

  describe("two light threads of one request on one object", function()
    it("Lock: the second waits until the first releases", function()
      local body = on(pids[1], "/threads?class=Lock").body
      assert.are.equal("first acquired x1\nfirst releases, 0 left\nsecond acquired x1\n", body)
      local waited = only("threads_wait")
      assert.is_true(waited >= 0.08 and waited <= 1, string.format("the second waited %.3f s", waited))
    end)

    it("RLock: a light thread's two acquires count, the other waits for both releases", function()
      local body = on(pids[2], "/threads?class=RLock").body
      assert.are.equal("first acquired x2\nfirst releases, 1 left\nfirst releases, 0 left\nsecond acquired x2\n", body)
      local waited = only("threads_wait")
      assert.is_true(waited >= 0.18 and waited <= 1.2, string.format("the second waited %.3f s", waited))
    end)
  end)

  it("serves a BoundedSemaphore's waiters in about arrival order under ab load (item 6)", function()
    for _, pid in ipairs(pids) do -- the cross-worker order needs the board portalock mapped in init_by_lua
      assert.are.equal("board", on(pid, "/board").body)
    end
    local run = server:load("/fair", {requests = FAIR.requests, concurrency = FAIR.concurrency})
    assert.are.same({FAIR.requests, 0, 0}, {run.complete, run.failed, run.non2xx}, run.output)
    assert.are.same({}, server:stats("fair_timeout"))
    local inside = server:stats("fair_inside")
    assert.are.equal(FAIR.requests, #inside)
    for _, count in ipairs(inside) do
      assert.is_true(count >= 1 and count <= FAIR.slots, "holders at once: " .. count)
    end
    local waits, lines = {}, {}
    for _, pid in ipairs(pids) do
      local of_worker = server:stats("fair_wait." .. pid)
      for _, wait in ipairs(of_worker) do
        waits[#waits + 1] = wait
      end
      lines[#lines + 1] = string.format("    worker %d: %s", pid, figures(nginx_load.summary(of_worker)))
    end
    local all = nginx_load.summary(waits)
    local report = string.format("fairness: acquire wait (s) %s, ab %.0f requests/s\n%s", figures(all), run.rps,
      table.concat(lines, "\n"))
    print("\n  " .. report)
    assert.are.equal(FAIR.requests, all.count)
    assert.is_true(all.p99 <= FAIR.p99, report)
  end)

  -- Needs the change that stops a failed try from making an inotify instance ("poll mode",
  -- issue 17 item 4, another branch): until it is merged this test may fail here.
  it("fails " .. FAIL_FAST.tries .. " fail_when_locked tries on a lock held elsewhere with p99 <= 1 ms, on each worker",
    function()
      held_elsewhere("fail-fast.lock")
      local failures = {}
      for _, pid in ipairs(pids) do
        local body = on(pid, "/fail_fast?name=fail-fast.lock&tries=" .. FAIL_FAST.tries).body
        assert.are.equal("failed " .. FAIL_FAST.tries .. "\n", body)
        local summary = nginx_load.summary(server:stats("fail_fast"))
        assert.are.equal(FAIL_FAST.tries, summary.count)
        local line = string.format("worker %d: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms", pid,
          summary.p50 * 1e3, summary.p90 * 1e3, summary.p99 * 1e3, summary.max * 1e3)
        print("\n  fail_when_locked on " .. line)
        if summary.p99 > FAIL_FAST.p99 then
          failures[#failures + 1] = line
        end
      end
      assert.are.same({}, failures)
    end)

  describe("client aborts (lua_check_client_abort on)", function()
    -- Needs the change that keeps no descriptor between the steps of a yielding wait ("poll
    -- mode", issue 17 item 3, another branch): until it is merged this test may fail here.
    it("leave no descriptor or inotify instance after " .. ABORTED.waiters .. " aborted waiters", function()
      local name = "aborted-waiters.lock"
      local release, holder = held_elsewhere(name)
      local wait_path = "/abort_wait?timeout=10&name=" .. name
      for _, pid in ipairs(pids) do -- warm-up: a wait that times out, on each worker
        assert.matches("^AlreadyLocked", on(pid, "/abort_wait?timeout=0.05&name=" .. name).body)
      end
      server:stats("abort_started")
      server:stats("abort_finished")
      local baseline = server:census()

      -- a client may give up before its request reaches the handler: that one is sent again
      local started, on_worker = 0, {}
      for _ = 1, 3 do
        local sent = server:abandon(wait_path, ABORTED.waiters - started, ABORTED.after_ms)
        assert.are.equal(0, sent.answered, "a waiter answered before its client gave up")
        for _, pid in ipairs(server:stats("abort_started")) do
          started = started + 1
          on_worker[pid] = (on_worker[pid] or 0) + 1
        end
        if started >= ABORTED.waiters then
          break
        end
      end
      assert.are.equal(ABORTED.waiters, started)
      assert.are.same({}, server:stats("abort_finished"))

      local now = {}
      local settled = helper.wait_until(function()
        now = server:census()
        for pid, counts in pairs(now) do
          if counts.fds > baseline[pid].fds or counts.inotify > baseline[pid].inotify then
            return false
          end
        end
        return true
      end, ABORTED.settle)
      print(string.format("\n  after %d aborted waiters (%d and %d on the workers), before: %s; after: %s",
        ABORTED.waiters, on_worker[pids[1]] or 0, on_worker[pids[2]] or 0, show(baseline), show(now)))
      assert.is_true(settled, "descriptors and inotify instances per worker, before: " .. show(baseline)
        .. "; " .. ABORTED.settle .. " s after: " .. show(now))

      -- and the lock is still usable: a waiter acquires as soon as the holder lets go
      local response = server:request_async(wait_path)
      helper.sleep(0.3)
      helper.write(release, "")
      assert(helper.wait_until(function() return not helper.alive(holder) end, 5))
      assert.are.equal("acquired\n", assert(response(10)).body)
      local waited = only("abort_finished")
      assert.is_true(waited <= 0.3 + FORGOTTEN_BOUND, string.format("waited %.3f s", waited))
    end)

    it("frees a lock held by an aborted request for the next request on either worker within 1 s", function()
      local name = "aborted-holder.lock"
      server:stats("abort_holding")
      for round = 0, 3 do
        local holder, taker = pids[round % 2 + 1], pids[math.floor(round / 2) + 1]
        local pair = string.format("round %d (%d then %d)", round, holder, taker)
        local sent = server:abandon("/abort_hold?name=" .. name, 1, ABORTED_HOLD_MS, {worker = holder})
        assert.are.same({sent = 1, answered = 0}, sent)
        assert.are.same({holder}, server:stats("abort_holding"), pair .. ": the aborted request did not hold")
        assert.are.equal("acquired\n", on(taker, "/take?timeout=3&name=" .. name).body, pair)
        local waited = only("taken_wait")
        assert.is_true(waited <= FORGOTTEN_BOUND, string.format("%s: waited %.3f s", pair, waited))
      end
    end)
  end)
end)
