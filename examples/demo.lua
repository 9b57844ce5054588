-- The demo: six jobs started at once through `portalock run -j 2`, drawn as a timeline that
-- shows at most two running at any moment; then the same six jobs through a config file that
-- declares the semaphore.
--
--   lua5.4 examples/demo.lua     (tools/demo builds the module and runs this)
--
-- Each job is this same script run as "job": it prints when it starts and ends, sleeps
-- JOB_SECONDS, and appends its times to a log from which the timeline is drawn. While the
-- jobs run, `portalock status` shows which processes hold the two slot files.
local JOBS, SLOTS, JOB_SECONDS = 6, 2, 0.6

local function uptime()
  local f = assert(io.open("/proc/uptime"))
  local seconds = f:read("*n")
  f:close()
  return seconds
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

if arg[1] == "job" then
  local id, start, log = tonumber(arg[2]), tonumber(arg[3]), arg[4]
  local began = uptime() - start
  print(("%5.2f s %s job %d starts"):format(began, ("   "):rep(id - 1), id))
  io.stdout:flush()
  os.execute(("sleep %.2f"):format(JOB_SECONDS))
  local ended = uptime() - start
  print(("%5.2f s %s job %d ends"):format(ended, ("   "):rep(id - 1), id))
  local f = assert(io.open(log, "a"))
  f:write(("%d %.2f %.2f\n"):format(id, began, ended))
  f:close()
  os.exit(0)
end

-- The interpreter is the most negative arg (e.g. "lua5.4"); the repository is the script's
-- parent directory.
local i = 0
while arg[i - 1] do
  i = i - 1
end
local lua, script = arg[i], arg[0]
local root = script:match("^(.*)/examples/[^/]*$") or (script:match("^examples/") and ".") or ".."
local portalock_command = quote(lua) .. " " .. quote(root .. "/bin/portalock")

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 700 " .. quote(dir)))

-- One row per job, one column per 0.1 s, "#" while it ran; returns the most at once.
local function timeline(log)
  local runs, events, finish = {}, {}, 0
  for line in io.lines(log) do
    local id, began, ended = line:match("^(%d+) (%S+) (%S+)$")
    id, began, ended = tonumber(id), tonumber(began), tonumber(ended)
    runs[id] = {began, ended}
    events[#events + 1] = {began, 1}
    events[#events + 1] = {ended, -1}
    finish = math.max(finish, ended)
  end
  print()
  local ruler = {}
  for second = 0, math.floor(finish) do
    ruler[#ruler + 1] = ("%-10s"):format(second .. " s")
  end
  print("        " .. table.concat(ruler))
  for id = 1, JOBS do
    local row = {}
    for column = 0, math.floor(finish * 10) do
      local t = column / 10 + 0.05
      row[#row + 1] = (runs[id] and t >= runs[id][1] and t < runs[id][2]) and "#" or "."
    end
    print(("job %d  |%s|"):format(id, table.concat(row)))
  end
  table.sort(events, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2] -- at equal times the end came first
  end)
  local running, most, count = 0, 0, 0
  for _, event in ipairs(events) do
    running = running + event[2]
    most = math.max(most, running)
    count = count + (event[2] > 0 and 1 or 0)
  end
  return most, count
end

-- Starts JOBS jobs at once, each as `portalock <run_args> -- <job>`, shows the slots'
-- status while they run, waits for all and draws the timeline. True when it went as promised.
local function part(title, run_args, status_args)
  local log = dir .. "/times." .. title:gsub("%W", "")
  print(("== %s"):format(title))
  print(("$ portalock %s -- %s %s job N   (%d jobs of %.1f s, started together)")
    :format(run_args, lua, script, JOBS, JOB_SECONDS))
  print()
  io.stdout:flush()
  local start = uptime()
  local jobs = {}
  for id = 1, JOBS do
    local command = ("%s %s -- %s %s job %d %.2f %s"):format(portalock_command, run_args,
      quote(lua), quote(script), id, start, quote(log))
    jobs[id] = assert(io.popen(command, "w")) -- the jobs write to our stdout
  end
  os.execute("sleep 0.3")
  print(("$ portalock %s"):format(status_args))
  io.stdout:flush()
  os.execute(portalock_command .. " " .. status_args)
  for id = 1, JOBS do
    jobs[id]:close()
  end
  local most, count = timeline(log)
  local ok = most <= SLOTS and count == JOBS
  print(("%d jobs ran, at most %d at once (the semaphore allows %d): %s"):format(count, most, SLOTS,
    ok and "as promised" or "NOT AS PROMISED"))
  print()
  os.remove(log)
  return ok
end

print(("portalock %s: the command line runs jobs under a crash-safe semaphore of %d slots"):format(
  require("portalock")._VERSION, SLOTS))
print()

local by_options = part("portalock run -j 2",
  ("run -j %d --name demo --dir %s"):format(SLOTS, quote(dir)),
  ("status %s/demo.00.lock %s/demo.01.lock"):format(quote(dir), quote(dir)))

local config = quote(root .. "/examples/portalock.conf.lua")
print(("The same through a config file: %s declares"):format(root .. "/examples/portalock.conf.lua"))
print('  bounded_semaphore "encoders" { maximum = 2, name = "portalock-example-encoders" }')
print()
local by_config = part("portalock --config examples/portalock.conf.lua run --name encoders",
  ("--config %s run --name encoders"):format(config),
  ("--config %s status encoders"):format(config))

for slot = 0, SLOTS - 1 do
  os.remove(("%s/demo.%02d.lock"):format(dir, slot))
end
os.remove(dir)
os.exit((by_options and by_config) and 0 or 1)
