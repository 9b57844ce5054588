--- Runs inside the specs' nginx (spec/support/nginx.lua): handlers record their own
--- measurements here, and the harness's /__stats location hands them to the spec.
--
--   local stats = require "spec.support.nginx_stats"
--   stats.record("acquire_wait", seconds)   -- any worker, any phase that has shared dicts
--
-- Values are kept in the lua_shared_dict the harness declares (nginx_stats.DICT), one list
-- per series, in the order they were recorded across both workers. A value that does not fit
-- is logged at [error], so the spec's error.log check reports it.
-- luacheck: globals ngx
local nginx_stats = {}

nginx_stats.DICT = "portalock_harness_stats"

--- Appends number `value` to `series`.
function nginx_stats.record(series, value)
  assert(type(value) == "number", "nginx_stats.record: value must be a number, got " .. type(value))
  local length, err = ngx.shared[nginx_stats.DICT]:rpush(series, value)
  if not length then
    ngx.log(ngx.ERR, "nginx_stats: could not record ", series, " = ", value, ": ", err)
  end
end

--- Content handler of /__stats?series=NAME: prints the series one value a line (%.17g) and
--- empties it, so that the next read starts afresh.
function nginx_stats.serve()
  local dict = ngx.shared[nginx_stats.DICT]
  local series = ngx.var.arg_series
  if not series or series == "" then
    ngx.status = 400
    ngx.say("/__stats needs ?series=NAME")
    return
  end
  local lines = {}
  for _ = 1, dict:llen(series) do
    local value = dict:lpop(series)
    if value == nil then
      break
    end
    lines[#lines + 1] = string.format("%.17g\n", value)
  end
  ngx.print(lines)
end

return nginx_stats
