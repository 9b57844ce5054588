--- Bounded HTTP load for the nginx specs: ApacheBench (`ab`, Debian's apache2-utils) runs,
--- their figures, and percentiles of a list of measurements.
local helper = require "spec.support.helper"

local nginx_load = {}

--- No run lasts longer than this (the issue's bound for a scenario).
nginx_load.MAX_SECONDS = 30
-- How long after its own time limit ab is killed if it has not stopped.
local KILL_GRACE = 3

--- nil when ab is installed, else why not.
function nginx_load.missing()
  if helper.run("command -v ab > /dev/null 2>&1") ~= 0 then
    return "ab is not installed (apt-get install apache2-utils)"
  end
end

--- Value at percentile `p` (0-100, nearest rank) of the numbers in `values`; nil if empty.
function nginx_load.percentile(values, p)
  if #values == 0 then
    return nil
  end
  local sorted = {}
  for i, v in ipairs(values) do
    sorted[i] = v
  end
  table.sort(sorted)
  return sorted[math.max(1, math.ceil(p / 100 * #sorted))]
end

--- {count, min, p50, p90, p99, max} of the numbers in `values` (all nil but count if empty).
function nginx_load.summary(values)
  local at = function(p) return nginx_load.percentile(values, p) end
  return {count = #values, min = at(0), p50 = at(50), p90 = at(90), p99 = at(99), max = at(100)}
end

local function whole(n)
  return type(n) == "number" and n >= 1 and n % 1 == 0
end

local function check_options(opts)
  local requests, concurrency = opts.requests, opts.concurrency or 1
  local seconds = opts.seconds or nginx_load.MAX_SECONDS
  assert(whole(requests), "load: requests must be a whole number >= 1, got " .. tostring(requests))
  assert(whole(concurrency) and concurrency <= requests,
    "load: concurrency must be a whole number from 1 to requests (" .. requests .. "), got " .. tostring(concurrency))
  assert(type(seconds) == "number" and seconds > 0 and seconds <= nginx_load.MAX_SECONDS,
    "load: seconds must be in (0, " .. nginx_load.MAX_SECONDS .. "], got " .. tostring(seconds))
  return requests, concurrency, seconds
end

-- ab's per-request lines (-g): "starttime seconds ctime dtime ttime wait", ttime in whole ms.
local function request_times(path)
  local times = {}
  for line in (helper.read(path) or ""):gmatch("[^\n]+") do
    local fields = {}
    for field in line:gmatch("[^\t]+") do
      fields[#fields + 1] = field
    end
    times[#times + 1] = tonumber(fields[5]) -- nil for the header line
  end
  table.sort(times)
  return times
end

local function figure(output, label)
  return tonumber(output:match(label .. ":%s+([%d.]+)"))
end

--- Runs ab against `url`: opts.requests (-n), opts.concurrency (-c, default 1), opts.seconds
--- (default and at most MAX_SECONDS): ab starts no request after that time, gives up if one
--- request has no answer for that long (an error), and is killed KILL_GRACE s later at most.
--- Each request opens its own connection (no keep-alive); `scratch` is a directory for ab's
--- files. Returns {complete, failed, non2xx, rps (0 if none completed), seconds, times (each
--- completed request's total time in ms, sorted; whole milliseconds), output (ab's report)};
--- raises if ab fails or is killed.
function nginx_load.ab(url, opts, scratch)
  local requests, concurrency, seconds = check_options(opts)
  local gnuplot = scratch .. "/ab." .. tostring(math.random(1e9)) .. ".tsv"
  -- -l: bodies may differ in length; -r: a reset connection is a failed request, not the end.
  local command = table.concat({helper.peer_env, "timeout -s KILL", seconds + KILL_GRACE, "ab -q -l -r",
    "-t", seconds, "-n", requests, "-c", concurrency, "-s", seconds, "-g", helper.quote(gnuplot),
    helper.quote(url)}, " ")
  local output, code = helper.capture(command)
  if code ~= 0 then
    local why = "failed"
    if code == 128 + 9 then
      why = "killed " .. KILL_GRACE .. " s after its time limit"
    elseif output:find("timeout specified has expired", 1, true) then
      why = "a request had no answer within " .. seconds .. " s"
    end
    error(string.format("ab against %s exited with %d (%s):\n%s", url, code, why, output))
  end
  local result = {
    complete = figure(output, "Complete requests"),
    failed = figure(output, "Failed requests"),
    non2xx = figure(output, "Non%-2xx responses") or 0,
    rps = figure(output, "Requests per second") or 0,
    seconds = figure(output, "Time taken for tests"),
    times = request_times(gnuplot),
    output = output,
  }
  os.remove(gnuplot)
  return result
end

--- Sends `count` requests for `path` to 127.0.0.1:`port` and closes each connection `ms`
--- milliseconds after its request went out (spec/support/nginx_abandon.py; with `worker`, only
--- over connections that worker accepted). Returns {sent, answered}: answered counts the
--- connections that had an answer (or the server's close) waiting when the client left.
function nginx_load.abandon(port, path, count, ms, worker)
  local command = table.concat({helper.peer_env, "timeout -s KILL", nginx_load.MAX_SECONDS, helper.python,
    helper.quote(helper.root .. "/spec/support/nginx_abandon.py"), port, helper.quote(path), count, ms,
    worker and tostring(worker) or ""}, " ")
  local output, code = helper.capture(command)
  local sent, answered = output:match("sent (%d+) answered (%d+)")
  if code ~= 0 or not sent then
    error("nginx_abandon.py failed (" .. code .. "):\n" .. output)
  end
  return {sent = tonumber(sent), answered = tonumber(answered)}
end

return nginx_load
