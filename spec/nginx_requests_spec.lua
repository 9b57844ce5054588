--- Issue 17's integration scenarios in a real nginx with two workers (running as nobody when
--- the specs run as root): a request owns its holds and they end with it, light threads of one
--- request are owners of their own, waiters are served in arrival order under `ab` load,
--- fail_when_locked attempts stay fast, client aborts leave nothing behind, and error.log stays
--- free of warnings.
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"

-- Lines an error.log may have at [warn] or worse because a test provoked them on purpose.
local DELIBERATE = "portalock-spec: deliberate error"
-- A forgotten hold must be free for the next request within this of its request's end.
local FORGOTTEN_BOUND = 1
-- The fairness scenario (issue 17 item 6): two slots, a 50 ms hold, 600 requests at
-- concurrency 20. The fair-share wait is (20 / 2 - 1) * 0.05 s = 0.45 s; the target is twice that.
local FAIR = {slots = 2, hold = 0.05, requests = 600, concurrency = 20, p99 = 1.0}
local ABORTED_WAITERS = 200

local INIT = [[
  local portalock = require "portalock"
  LOCK_DIR = %q
  -- one object per worker, shared by its requests: the object a request forgets
  FORGOTTEN = portalock.Lock(LOCK_DIR .. "/forgotten.lock", {timeout = 3})
]]

local LOCATIONS = [[
    # ?worker=PID: only that worker answers; the other says 421 and the client asks again
    if ($portalock_wrong_worker) { return 421; }

    location = /forget {
      content_by_lua_block {
        local how = ngx.var.arg_how
        if how == "pcall" then
          local ok, err = pcall(function()
            assert(FORGOTTEN:acquire())
            error("]] .. DELIBERATE .. [[ (caught)")
          end)
          ngx.say("caught ", tostring(ok and "nothing" or err), " worker=", ngx.worker.pid())
          return
        end
        assert(FORGOTTEN:acquire())
        if how == "error" then
          error("]] .. DELIBERATE .. [[ (uncaught)")
        end
        ngx.say("held worker=", ngx.worker.pid())
      }
    }
    location = /take_forgotten {
      content_by_lua_block {
        local core = require "portalock.core"
        local started = core.monotonic()
        local fh, err = FORGOTTEN:acquire()
        local waited = core.monotonic() - started
        if fh then
          assert(FORGOTTEN:release())
        end
        ngx.say(string.format("%s %.3f worker=%d %s", fh and "acquired" or err.kind, waited,
          ngx.worker.pid(), fh and "" or err.message))
      }
    }
    location = /take {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local lock = portalock.Lock(ngx.var.arg_path, {timeout = tonumber(ngx.var.arg_timeout)})
        local started = core.monotonic()
        local fh, err = lock:acquire()
        local waited = core.monotonic() - started
        if fh then
          assert(lock:release())
        end
        ngx.say(string.format("%s %.3f %s", fh and "acquired" or err.kind, waited, fh and "" or err.message))
      }
    }
    location = /threads {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local class = ngx.var.arg_class
        local lock = portalock[class](LOCK_DIR .. "/threads." .. class, {timeout = 3})
        local events = {}
        local function event(...)
          events[#events + 1] = table.concat({...}, " ")
        end
        local depth = class == "RLock" and 2 or 1
        local first = ngx.thread.spawn(function()
          for _ = 1, depth do
            assert(lock:acquire())
          end
          event("first acquired x" .. depth)
          for i = depth, 1, -1 do
            ngx.sleep(0.1)
            event("first releases, " .. (i - 1) .. " left")
            assert(lock:release())
          end
        end)
        local second = ngx.thread.spawn(function()
          local started = core.monotonic()
          for _ = 1, depth do
            local fh, err = lock:acquire()
            if not fh then
              event("second failed: " .. tostring(err))
              return
            end
          end
          event(string.format("second acquired x%d after %.3f", depth, core.monotonic() - started))
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
        local stats = ngx.shared.stats
        local sem = portalock.NamedBoundedSemaphore(]] .. FAIR.slots .. [[, {name = "fair", directory = LOCK_DIR})
        local started = core.monotonic()
        local slot, err = sem:acquire()
        local waited = core.monotonic() - started
        if not slot then
          stats:incr("timeouts", 1, 0)
          ngx.status = 503
          ngx.say(err.kind, " ", err.message)
          return
        end
        local n = stats:incr("n", 1, 0)
        stats:set("inside:" .. n, stats:incr("inside", 1, 0))
        ngx.sleep(]] .. FAIR.hold .. [[)
        stats:incr("inside", -1)
        assert(sem:release())
        stats:set("wait:" .. n, waited)
        stats:set("worker:" .. n, ngx.worker.pid())
        ngx.say("ok")
      }
    }
    location = /stats {
      content_by_lua_block {
        local stats = ngx.shared.stats
        local waits, inside, workers = {}, {}, {}
        for i = 1, stats:get("n") or 0 do
          waits[i] = stats:get("wait:" .. i) or -1
          inside[i] = stats:get("inside:" .. i) or -1
          workers[i] = stats:get("worker:" .. i) or -1
        end
        ngx.say("timeouts ", stats:get("timeouts") or 0)
        ngx.say("waits ", table.concat(waits, " "))
        ngx.say("inside ", table.concat(inside, " "))
        ngx.say("workers ", table.concat(workers, " "))
        for _, key in ipairs({"abort_started", "abort_finished", "abort_holding"}) do
          ngx.say(key, " ", stats:get(key) or 0)
        end
      }
    }
    location = /stats_reset {
      content_by_lua_block { ngx.shared.stats:flush_all() ngx.say("reset") }
    }
    location = /fail_fast {
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local lock = portalock.Lock(ngx.var.arg_path, {fail_when_locked = true})
        local times = {}
        for i = 1, tonumber(ngx.var.arg_tries) do
          local started = core.monotonic()
          local fh, err = lock:acquire()
          times[i] = core.monotonic() - started
          if fh or err.kind ~= "AlreadyLocked" then
            ngx.say(fh and "acquired" or err.kind .. " " .. err.message)
            return
          end
        end
        ngx.say(table.concat(times, " "))
      }
    }
    location = /abort_wait {
      lua_check_client_abort on;
      content_by_lua_block {
        local portalock = require "portalock"
        local core = require "portalock.core"
        local stats = ngx.shared.stats
        local lock = portalock.Lock(ngx.var.arg_path, {timeout = tonumber(ngx.var.arg_timeout)})
        stats:incr("abort_started", 1, 0)
        local started = core.monotonic()
        local fh, err = lock:acquire()
        local waited = core.monotonic() - started
        stats:incr("abort_finished", 1, 0)
        if fh then
          assert(lock:release())
        end
        ngx.say(string.format("%s %.3f %s", fh and "acquired" or err.kind, waited, fh and "" or err.message))
      }
    }
    location = /abort_hold {
      lua_check_client_abort on;
      content_by_lua_block {
        local portalock = require "portalock"
        local lock = portalock.Lock(ngx.var.arg_path, {timeout = 3})
        assert(lock:acquire())
        ngx.shared.stats:set("abort_holding", ngx.worker.pid())
        ngx.sleep(5)
        assert(lock:release())
        ngx.say("released")
      }
    }
]]

-- The `map` behind ?worker=PID (the if in LOCATIONS).
local HTTP = [[
  lua_shared_dict stats 4m;
  map "$arg_worker:$pid" $portalock_wrong_worker {
    "~^:" 0;
    "~^([0-9]+):\1$" 0;
    default 1;
  }
]]

-- ---------------------------------------------------------------------------------------
-- Local helpers until spec/support/nginx.lua (extended on another branch) offers them:
-- two workers running as nobody, requests confined to one worker, `ab` load, client aborts,
-- error.log problems, a worker's descriptors and inotify instances.

local as_root = helper.capture("id -u") == "0\n"

local function escape(s)
  return (s:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- A directory nginx's workers (nobody, when root) can write.
local function shared_tmpdir()
  local dir = helper.tmpdir()
  assert(helper.run("chmod 0777 " .. helper.quote(dir)) == 0)
  return dir
end

-- An empty file everyone may open for writing (a holder outside nginx creates it as root).
local function shared_file(path)
  helper.write(path, "")
  assert(helper.run("chmod 0666 " .. helper.quote(path)) == 0)
  return path
end

-- The worker processes of `server` (the master's children).
local function workers(server)
  local pids = {}
  for pid in (helper.capture("pgrep -P " .. server.pid) or ""):gmatch("%d+") do
    pids[#pids + 1] = tonumber(pid)
  end
  table.sort(pids)
  return pids
end

local function status_of(head)
  return tonumber(head and head:match("^HTTP/%S+ (%d+)"))
end

-- GET `path` answered by worker `pid`: the body and the status.
local function get_on(server, pid, path)
  local sep = path:find("?", 1, true) and "&" or "?"
  for _ = 1, 200 do
    local body, _, head = server:get(path .. sep .. "worker=" .. pid)
    local status = status_of(head)
    if status ~= 421 then
      return body, status
    end
  end
  error("worker " .. pid .. " never answered " .. path)
end

-- Reloads `server` with two worker processes, as nobody when root (the harness starts one).
local function two_unprivileged_workers(server)
  local conf = server.dir .. "/nginx.conf"
  local user = as_root and "user nobody nogroup;\n" or ""
  local text = helper.read(conf):gsub("user root;\n", ""):gsub("worker_processes 1;", user .. "worker_processes 2;")
  helper.write(conf, text)
  helper.kill(server.pid, "HUP")
  local pids
  local ready = helper.wait_until(function()
    pids = workers(server)
    return #pids == 2 and pids[1] ~= server.worker and pids[2] ~= server.worker
  end, 10)
  assert(ready, "nginx did not restart with two workers:\n" .. server:error_log())
  for _, pid in ipairs(pids) do
    get_on(server, pid, "/__ready")
  end
  return pids
end

local PROBLEM_LEVELS = {warn = true, error = true, crit = true, alert = true, emerg = true}

-- The error.log's lines at [warn] or worse after byte `mark`, but for DELIBERATE ones.
local function log_problems(server, mark)
  local problems = {}
  for line in server:error_log():sub(mark + 1):gmatch("[^\n]+") do
    if PROBLEM_LEVELS[line:match("^%S+ %S+ %[(%a+)%]")] and not line:find(DELIBERATE, 1, true) then
      problems[#problems + 1] = line
    end
  end
  return problems
end

-- A worker's open descriptors and, among them, its inotify instances.
local function census(pid)
  local fds, inotify = 0, 0
  for line in (helper.capture("ls -l /proc/" .. pid .. "/fd") or ""):gmatch("[^\n]+") do
    if line:find(" -> ", 1, true) then
      fds = fds + 1
      if line:find("anon_inode:inotify", 1, true) then
        inotify = inotify + 1
      end
    end
  end
  return {fds = fds, inotify = inotify}
end

-- `ab` at `url`, bounded: what it reports.
local function ab(url, requests, concurrency)
  local output = helper.capture(string.format("%stimeout 45 ab -q -s 10 -t 30 -n %d -c %d %s",
    helper.peer_env, requests, concurrency, helper.quote(url)))
  return {
    complete = tonumber(output:match("Complete requests:%s+(%d+)")),
    failed = tonumber(output:match("Failed requests:%s+(%d+)")),
    non_2xx = tonumber(output:match("Non%-2xx responses:%s+(%d+)")) or 0,
    output = output,
  }
end

-- `count` GETs of `url`, `parallel` at a time, each abandoned by the client after `seconds`.
local function abandon(url, count, parallel, seconds)
  helper.run(string.format("seq %d | timeout 60 xargs -P %d -I{} %scurl -s -o /dev/null --max-time %s %s",
    count, parallel, helper.peer_env, seconds, helper.quote(url)))
end

-- ---------------------------------------------------------------------------------------

local function show(census_of)
  local parts = {}
  for pid, counts in pairs(census_of) do
    parts[#parts + 1] = string.format("%d: %d fds, %d inotify", pid, counts.fds, counts.inotify)
  end
  table.sort(parts)
  return table.concat(parts, "; ")
end

local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(p * #sorted))]
end

local function numbers(text)
  local list = {}
  for n in (text or ""):gmatch("%S+") do
    list[#list + 1] = tonumber(n)
  end
  return list
end

local function stats(server)
  local body = assert(server:get("/stats"))
  local fields = {}
  for key, value in body:gmatch("(%S+) ?([^\n]*)\n") do
    fields[key] = value
  end
  return {timeouts = tonumber(fields.timeouts), waits = numbers(fields.waits), inside = numbers(fields.inside),
    workers = numbers(fields.workers),
    abort_started = tonumber(fields.abort_started), abort_finished = tonumber(fields.abort_finished),
    abort_holding = tonumber(fields.abort_holding)}
end

describe("portalock and nginx requests (issue 17)", function()
  local missing = nginx.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local dir, server, pids, mark, holders

  setup(function()
    dir = shared_tmpdir()
    shared_file(dir .. "/forgotten.lock")
    server = nginx.start({http = HTTP, init = string.format(INIT, dir), locations = LOCATIONS})
    pids = two_unprivileged_workers(server)
  end)

  teardown(function()
    if server then
      server:stop()
    end
    helper.rmtree(dir)
  end)

  before_each(function()
    holders = {}
    mark = #server:error_log()
    assert.are.equal("reset\n", (server:get("/stats_reset")))
  end)

  after_each(function()
    for _, holder in ipairs(holders) do
      helper.kill(holder.pid)
      helper.rmtree(holder.dir)
    end
    -- issue 17 item 6 (no "ngx.sleep(0) called without delayed events patch") and the rest
    local problems = log_problems(server, mark)
    assert.are.equal(0, #problems, #problems .. " error.log lines at [warn] or worse, the first:\n"
      .. table.concat(problems, "\n", 1, math.min(#problems, 3)))
  end)

  -- Another process holds a lock on a fresh file in the workers' directory; returns its path
  -- and the file that lets it go.
  local function held_elsewhere(name)
    local holder_dir = helper.tmpdir()
    local path = shared_file(dir .. "/" .. name)
    local pid = helper.hold("Lock", path, holder_dir, {seconds = 30})
    holders[#holders + 1] = {pid = pid, dir = holder_dir}
    return path, holder_dir .. "/release", pid
  end

  it("runs two workers" .. (as_root and ", as nobody" or ""), function()
    assert.are.equal(2, #pids)
    local expected = helper.capture(as_root and "id -u nobody" or "id -u"):match("%d+")
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
        local body, status = get_on(server, holder, "/forget?how=" .. how)
        assert.are.equal(expected_status, status, body)
        body = get_on(server, taker, "/take_forgotten")
        local outcome, waited, worker = body:match("^(%a+) ([%d.]+) worker=(%d+)")
        assert.are.equal("acquired", outcome, string.format("round %d (%d then %d): %s", round, holder, taker, body))
        assert.are.equal(taker, tonumber(worker))
        assert.is_true(tonumber(waited) <= FORGOTTEN_BOUND, string.format("round %d (%d then %d): waited %s s",
          round, holder, taker, waited))
        longest = math.max(longest, tonumber(waited))
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

  describe("two light threads of one request on one object", function()
    it("Lock: the second waits until the first releases", function()
      local body = get_on(server, pids[1], "/threads?class=Lock")
      local first, releases, waited = body:match("^(.-)\n(.-)\nsecond acquired x1 after ([%d.]+)\n$")
      assert(first, body)
      assert.are.equal("first acquired x1", first)
      assert.are.equal("first releases, 0 left", releases)
      assert.is_true(tonumber(waited) >= 0.08 and tonumber(waited) <= 1, "the second waited " .. waited .. " s")
    end)

    it("RLock: a light thread's two acquires count, the other waits for both releases", function()
      local body = get_on(server, pids[2], "/threads?class=RLock")
      local lines = {}
      for line in body:gmatch("[^\n]+") do
        lines[#lines + 1] = line
      end
      assert.are.same({"first acquired x2", "first releases, 1 left", "first releases, 0 left"},
        {lines[1], lines[2], lines[3]}, body)
      local waited = tonumber((lines[4] or ""):match("^second acquired x2 after ([%d.]+)$"))
      assert(waited, body)
      assert.is_true(waited >= 0.18 and waited <= 1.2, "the second waited " .. waited .. " s")
    end)
  end)

  it("serves a BoundedSemaphore's waiters in about arrival order under ab load (item 6)", function()
    local run = ab(server:url("/fair"), FAIR.requests, FAIR.concurrency)
    assert.are.equal(FAIR.requests, run.complete, run.output)
    local result = stats(server)
    assert.are.equal(0, result.timeouts)
    assert.are.equal(0, run.non_2xx, run.output)
    assert.are.equal(FAIR.requests, #result.waits)
    for _, inside in ipairs(result.inside) do
      assert.is_true(inside >= 1 and inside <= FAIR.slots, "holders at once: " .. inside)
    end
    local per_worker = {}
    for i, pid in ipairs(result.workers) do
      per_worker[pid] = per_worker[pid] or {}
      table.insert(per_worker[pid], result.waits[i])
    end
    table.sort(result.waits)
    local p50, p99 = percentile(result.waits, 0.5), percentile(result.waits, 0.99)
    print(string.format("\n  fairness: %d requests, 0 timeouts, acquire wait p50 %.3f s, p99 %.3f s, max %.3f s",
      #result.waits, p50, p99, result.waits[#result.waits]))
    for pid, waits in pairs(per_worker) do
      table.sort(waits)
      print(string.format("    worker %d: %d requests, p50 %.3f s, p99 %.3f s", pid, #waits, percentile(waits, 0.5),
        percentile(waits, 0.99)))
    end
    assert.is_true(p99 <= FAIR.p99, string.format("acquire wait p99 %.3f s (p50 %.3f s)", p99, p50))
  end)

  -- Needs the change that stops a failed try from making an inotify instance (another branch
  -- of issue 17, item 4): until it lands this test may fail here.
  it("fails 50 fail_when_locked tries on a lock held elsewhere with p99 <= 1 ms, on each worker", function()
    local path = held_elsewhere("fail-fast.lock")
    for _, pid in ipairs(pids) do
      local body = get_on(server, pid, "/fail_fast?tries=50&path=" .. escape(path))
      local times = numbers(body)
      assert.are.equal(50, #times, body)
      table.sort(times)
      local p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
      print(string.format("\n  fail_when_locked on worker %d: p50 %.3f ms, p99 %.3f ms", pid, p50 * 1e3, p99 * 1e3))
      assert.is_true(p99 <= 0.001, string.format("worker %d: p50 %.3f ms, p99 %.3f ms", pid, p50 * 1e3, p99 * 1e3))
    end
  end)

  describe("client aborts (lua_check_client_abort on)", function()
    it("leave no descriptor or inotify instance after " .. ABORTED_WAITERS .. " aborted waiters", function()
      local path, release, holder = held_elsewhere("aborted-waiters.lock")
      local wait_url = "/abort_wait?timeout=10&path=" .. escape(path)
      for _, pid in ipairs(pids) do -- warm-up: a wait that times out, on each worker
        assert.matches("^AlreadyLocked", (get_on(server, pid, "/abort_wait?timeout=0.05&path=" .. escape(path))))
      end
      local baseline = {}
      for _, pid in ipairs(pids) do
        baseline[pid] = census(pid)
      end
      assert.are.equal("reset\n", (server:get("/stats_reset")))

      -- a client may give up before its request reaches the handler: it is sent again
      local result = stats(server)
      for _ = 1, 3 do
        abandon(server:url(wait_url), ABORTED_WAITERS - result.abort_started, 20, 0.2)
        result = stats(server)
        if result.abort_started >= ABORTED_WAITERS then
          break
        end
      end
      assert.are.equal(ABORTED_WAITERS, result.abort_started)
      assert.are.equal(0, result.abort_finished)

      local now = {}
      local settled = helper.wait_until(function()
        local back = true
        for _, pid in ipairs(pids) do
          now[pid] = census(pid)
          back = back and now[pid].fds <= baseline[pid].fds and now[pid].inotify <= baseline[pid].inotify
        end
        return back
      end, 2)
      assert.is_true(settled, "descriptors and inotify instances per worker, before: " .. show(baseline)
        .. ", after: " .. show(now))

      -- and the lock is still usable: a waiter acquires as soon as the holder lets go
      local response = server:get_async(wait_url)
      helper.sleep(0.3)
      helper.write(release, "")
      assert(helper.wait_until(function() return not helper.alive(holder) end, 5))
      local body = assert(response(10))
      local outcome, waited = body:match("^(%a+) ([%d.]+)")
      assert.are.equal("acquired", outcome, body)
      assert.is_true(tonumber(waited) <= 0.3 + FORGOTTEN_BOUND, "waited " .. waited .. " s")
    end)

    it("frees a lock held by an aborted request for the next request on either worker within 1 s", function()
      local path = shared_file(dir .. "/aborted-holder.lock")
      local url = server:url("/abort_hold?path=" .. escape(path))
      for round = 0, 3 do
        local holder, taker = pids[round % 2 + 1], pids[math.floor(round / 2) + 1]
        assert.are.equal("reset\n", (server:get("/stats_reset")))
        -- the other worker answers 421 at once; the holder's request is abandoned after 0.3 s
        local held = helper.wait_until(function()
          helper.run(string.format("%scurl -s -o /dev/null --max-time 0.3 %s", helper.peer_env,
            helper.quote(url .. "&worker=" .. holder)))
          return stats(server).abort_holding == holder
        end, 10)
        assert.is_true(held, "worker " .. holder .. " never held the lock")
        local body = get_on(server, taker, "/take?timeout=3&path=" .. escape(path))
        local outcome, waited = body:match("^(%a+) ([%d.]+)")
        assert.are.equal("acquired", outcome, body)
        assert.is_true(tonumber(waited) <= FORGOTTEN_BOUND, string.format("round %d (%d then %d): waited %s s",
          round, holder, taker, waited))
      end
    end)
  end)
end)
