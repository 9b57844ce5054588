-- The nginx harness's own checks (spec/support/nginx*.lua): its error.log reader and
-- percentiles on hand-made input, then a real nginx: workers, users, routing, load, client
-- aborts, the descriptor census, handler measurements and the error.log check.
local core = require "portalock.core"
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"
local nginx_load = require "spec.support.nginx_load"
local nginx_log = require "spec.support.nginx_log"

describe("the nginx harness's error.log reader", function()
  local LOG = table.concat({
    "2026/12/07 05:59:25 [notice] 10#10: using the \"epoll\" event method",
    "2026/12/07 05:59:25 [warn] 11#11: *4 something odd, client: 127.0.0.1",
    "2026/12/07 05:59:26 [error] 11#11: *5 lua entry thread aborted: runtime error: boom",
    "stack traceback:",
    "coroutine 0:",
    "2026/12/07 05:59:27 [info] 12#12: *6 client prematurely closed connection",
    "2026/12/07 05:59:28 [alert] 9#9: worker process 12 exited on signal 11",
  }, "\n") .. "\n"

  it("groups a dated line with the undated lines after it", function()
    local entries = nginx_log.entries(LOG)
    assert.are.equal(5, #entries)
    assert.are.same({"notice", "warn", "error", "info", "alert"},
      {entries[1].level, entries[2].level, entries[3].level, entries[4].level, entries[5].level})
    assert.are.equal(11, entries[3].pid)
    assert.matches("boom\nstack traceback:\ncoroutine 0:$", entries[3].text)
  end)

  it("reports [warn] and worse, less the expected patterns", function()
    local problems = nginx_log.problems(LOG)
    assert.are.equal(3, #problems)
    assert.matches("something odd", problems[1])
    assert.matches("exited on signal 11", problems[3])
    assert.are.same({problems[2]}, nginx_log.problems(LOG, {"something odd", "signal %d+"}))
  end)

  it("counts lines before any dated one as errors", function()
    assert.are.same({"garbage"}, nginx_log.problems("garbage\n"))
  end)
end)

describe("the nginx harness's percentiles", function()
  it("take the nearest rank of the sorted values", function()
    local values = {}
    for i = 100, 1, -1 do
      values[#values + 1] = i
    end
    assert.are.same({count = 100, min = 1, p50 = 50, p90 = 90, p99 = 99, max = 100}, nginx_load.summary(values))
    assert.are.equal(7, nginx_load.percentile({7}, 99))
    assert.is_nil(nginx_load.percentile({}, 50))
  end)
end)

-- Lua inside nginx.conf for the checks below.
local LOCATIONS = [[
    location = /ping { content_by_lua_block { ngx.print(ngx.worker.pid()) } }
    location = /whoami {
      content_by_lua_block {
        local path = os.getenv("@LOCK_DIR_ENV@") .. "/made-by." .. ngx.worker.pid()
        local f = assert(io.open(path, "w"))
        f:close()
        ngx.print(path)
      }
    }
    location = /slow { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_seconds) or 3) } }
    location = /warn { content_by_lua_block { ngx.log(ngx.WARN, "planted warning"); ngx.print("ok") } }
    location = /fail { content_by_lua_block { error("planted failure") } }
    location = /record {
      content_by_lua_block {
        local stats = require "spec.support.nginx_stats"
        stats.record("values", tonumber(ngx.var.arg_value))
        stats.record("pids", ngx.worker.pid())
      }
    }
    location = /inotify {
      content_by_lua_block {
        local ffi = require "ffi"
        pcall(ffi.cdef, "int inotify_init1(int flags); int close(int fd);")
        KEPT = KEPT or {}
        if ngx.var.arg_close then
          for _, fd in ipairs(KEPT) do ffi.C.close(fd) end
          KEPT = {}
        else
          KEPT[#KEPT + 1] = ffi.C.inotify_init1(0x80000) -- IN_CLOEXEC
        end
        ngx.print(#KEPT)
      }
    }
    location = /linger {
      lua_check_client_abort on;
      content_by_lua_block {
        local stats = require "spec.support.nginx_stats"
        assert(ngx.on_abort(function()
          stats.record("aborted", ngx.worker.pid())
          ngx.exit(499)
        end))
        ngx.sleep(5)
        stats.record("finished", ngx.worker.pid())
      }
    }
]]

describe("the nginx harness (a real nginx)", function()
  local missing = nginx.missing() or nginx_load.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local server, workers, log_mark

  setup(function()
    server = nginx.start({locations = LOCATIONS:gsub("@LOCK_DIR_ENV@", nginx.LOCK_DIR_ENV)})
    workers = server:workers()
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  before_each(function()
    log_mark = server:log_mark()
  end)

  local function status_field(pid, name)
    local status = assert(helper.read("/proc/" .. pid .. "/status"), "no process " .. pid)
    return tonumber(status:match("\n" .. name .. ":%s+(%d+)"))
  end

  it("starts two workers, children of the master", function()
    assert.are.equal(2, #workers)
    assert.are_not.equal(workers[1], workers[2])
    for _, pid in ipairs(workers) do
      assert.are.equal(server.pid, status_field(pid, "PPid"))
    end
    assert.are.same({}, server:log_problems(nil, log_mark))
  end)

  it("runs the workers as nobody when started as root, else as the caller; as_worker_user too", function()
    local expected = tonumber((helper.capture("id -u " .. (nginx.as_root() and nginx.WORKER_USER or ""))))
    for _, pid in ipairs(workers) do
      assert.are.equal(expected, status_field(pid, "Uid"))
    end
    assert.are.equal(expected, tonumber((helper.capture(nginx.as_worker_user("id -u")))))
  end)

  it("gives the workers a lock directory they can write", function()
    local owner = tonumber((helper.capture("id -u " .. (nginx.as_root() and nginx.WORKER_USER or ""))))
    for _, pid in ipairs(workers) do
      local response = assert(server:request("/whoami", {worker = pid}))
      assert.are.equal(200, response.status, response.body)
      assert.are.equal(server.lock_dir .. "/made-by." .. pid, response.body)
      local uid = tonumber((helper.capture("stat -c %u " .. helper.quote(response.body))))
      assert.are.equal(owner, uid)
    end
    assert.are.same({}, server:log_problems(nil, log_mark))
  end)

  it("sends a request to the worker it names, and tells which worker answered", function()
    for _, pid in ipairs(workers) do
      for _ = 1, 10 do
        local response = assert(server:request("/ping", {worker = pid}))
        assert.are.same({200, pid, tostring(pid)}, {response.status, response.pid, response.body})
      end
    end
    local wait = server:request_async("/ping", {worker = workers[2]})
    assert.are.equal(workers[2], assert(wait(10)).pid)
  end)

  it("times the answered connection of a request", function()
    local response = assert(server:request("/slow?seconds=0.3", {worker = workers[1]}))
    assert.are.same({200, ""}, {response.status, response.body})
    assert.is_true(response.seconds >= 0.3 and response.seconds < 3, "took " .. response.seconds .. " s")
  end)

  it("finds the planted warnings and errors in error.log, less the expected ones", function()
    assert.are.equal("ok", (server:get("/warn")))
    assert.are.equal(500, assert(server:request("/fail")).status)
    local problems = server:log_problems(nil, log_mark)
    assert.are.equal(2, #problems, table.concat(problems, "\n"))
    assert.matches("%[warn%].*planted warning", problems[1])
    assert.matches("%[error%].*planted failure", problems[2])
    assert.are.same({}, server:log_problems({"planted"}, log_mark))
    assert.are.same({}, server:log_problems(nil, server:log_mark()))
  end)

  it("hands the handlers' measurements to the spec, in order, once", function()
    for i = 1, 5 do
      assert.is_truthy(server:get("/record?value=" .. i / 4))
    end
    assert.are.same({0.25, 0.5, 0.75, 1, 1.25}, server:stats("values"))
    assert.are.same({}, server:stats("values"))
    assert.are.equal(5, #server:stats("pids"))
  end)

  it("runs ab within its bounds and reports each request; a stalled request ends the run", function()
    local result = server:load("/record?value=1", {requests = 200, concurrency = 10, seconds = 20})
    assert.are.same({200, 0, 0}, {result.complete, result.failed, result.non2xx}, result.output)
    assert.are.equal(200, #result.times)
    assert.is_true(result.rps > 0 and result.times[1] <= result.times[200])
    assert.are.equal(200, #server:stats("values"))
    server:stats("pids")
    local started = core.monotonic()
    local ok, err = pcall(server.load, server, "/slow", {requests = 1, seconds = 1})
    assert.is_false(ok)
    assert.matches("a request had no answer within 1 s", err)
    assert.is_true(core.monotonic() - started < 2.5, "ab was stopped after " .. core.monotonic() - started .. " s")
    assert.has_error(function() server:load("/ping", {requests = 10, concurrency = 11}) end)
    assert.has_error(function() server:load("/ping", {requests = 10, seconds = 31}) end)
  end)

  it("counts a worker's descriptors and inotify instances", function()
    local worker = workers[1]
    local before = server:census()[worker]
    assert.is_true(before.fds > 0 and #before.targets == before.fds)
    assert.are.equal("1", (server:get("/inotify", {worker = worker})))
    assert.are.equal("2", (server:get("/inotify", {worker = worker})))
    local during = nginx.census(worker)
    assert.are.same({before.fds + 2, before.inotify + 2}, {during.fds, during.inotify})
    assert.are.equal("0", (server:get("/inotify?close=1", {worker = worker})))
    local after = nginx.census(worker)
    assert.are.same({before.fds, before.inotify}, {after.fds, after.inotify})
  end)

  it("abandons requests: the client closes, nginx aborts them on the worker named", function()
    local result = server:abandon("/linger", 20, 300, {worker = workers[2]})
    assert.are.same({sent = 20, answered = 0}, result)
    local aborted
    assert.is_true(helper.wait_until(function()
      aborted = server:stats("aborted")
      return #aborted > 0
    end, 5), "no request was aborted")
    helper.wait_until(function()
      local more = server:stats("aborted")
      for _, pid in ipairs(more) do
        aborted[#aborted + 1] = pid
      end
      return #aborted >= 20
    end, 5)
    assert.are.equal(20, #aborted)
    for _, pid in ipairs(aborted) do
      assert.are.equal(workers[2], pid)
    end
    assert.are.same({}, server:stats("finished"))
    assert.are.same({}, server:log_problems(nil, log_mark))
  end)
end)
