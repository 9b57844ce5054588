-- Four processes take turns on one lock file; then six share a bounded semaphore of two.
--
--   lua5.4 examples/demo.lua     (tools/demo builds the module and runs this)
--
-- The parent starts the workers with io.popen, running this same script with the same
-- interpreter. Each worker takes a portalock.Lock on one file three times; while it holds
-- the lock it increments a counter kept in a second file by read, pause, write. Each line
-- starts with the seconds since the start: between a worker's "has the lock" and its "releases the lock" no other
-- worker has it, and at the end the counter shows that no increment was lost.
local portalock = require "portalock"

local WORKERS, ROUNDS = 4, 3
local WORK_SECONDS = 0.4 -- how long a worker holds the lock each round

local function uptime()
  local f = assert(io.open("/proc/uptime"))
  local seconds = f:read("*n")
  f:close()
  return seconds
end

local function sleep(seconds)
  os.execute(("sleep %.2f"):format(seconds))
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_number(path)
  local f = assert(io.open(path))
  local n = f:read("*n")
  f:close()
  return n
end

local function write_number(path, n)
  local f = assert(io.open(path, "w"))
  f:write(n, "\n")
  f:close()
end

local function worker(id, dir, start)
  io.stdout:setvbuf("line")
  local function say(fmt, ...)
    io.write(("%6.2f s %s worker %d %s\n"):format(uptime() - start, ("  "):rep(id - 1), id,
      fmt:format(...)))
  end

  local lock = portalock.Lock(dir .. "/demo.lock", { timeout = 60 })
  local counter = dir .. "/counter"
  for round = 1, ROUNDS do
    say("waits for the lock")
    -- with() acquires (raising if that fails), runs the function, and releases even on error.
    portalock.with(lock, function(fh)
      say("has the lock        (round %d of %d)", round, ROUNDS)
      local n = read_number(counter) -- an unlocked read-pause-write would lose updates
      sleep(WORK_SECONDS)
      write_number(counter, n + 1)
      fh:write(("worker %d round %d\n"):format(id, round)) -- fh is a real io handle
      say("releases the lock   (counter %d -> %d)", n, n + 1)
    end)
    sleep(0.05 * id) -- a moment without the lock, so that the others get their turn
  end
end

-- Part two: a NamedBoundedSemaphore lets at most SEM_MAXIMUM of SEM_WORKERS run at once.
local SEM_WORKERS, SEM_MAXIMUM, SEM_WORK_SECONDS = 6, 2, 0.6

local function sem_worker(id, dir, start)
  io.stdout:setvbuf("line")
  local sem = portalock.NamedBoundedSemaphore(SEM_MAXIMUM, { name = "demo", directory = dir, timeout = 60,
    check_interval = 0.02 })
  -- with() acquires a free slot (waiting while all are taken) and releases it afterwards.
  portalock.with(sem, function(slot)
    local entered = uptime() - start
    io.write(("%6.2f s %s worker %d runs in slot %d\n"):format(entered, ("  "):rep(id - 1), id, slot.number))
    sleep(SEM_WORK_SECONDS)
    local left = uptime() - start
    io.write(("%6.2f s %s worker %d is done\n"):format(left, ("  "):rep(id - 1), id))
    write_number(dir .. "/sem." .. id, ("%.2f %.2f"):format(entered, left)) -- for the check below
  end)
end

if arg[1] == "worker" then
  worker(tonumber(arg[2]), arg[3], tonumber(arg[4]))
  os.exit(0)
elseif arg[1] == "semworker" then
  sem_worker(tonumber(arg[2]), arg[3], tonumber(arg[4]))
  os.exit(0)
end

-- The parent: the interpreter is the most negative arg (e.g. "lua5.4" or "luajit").
local i = 0
while arg[i - 1] do
  i = i - 1
end
local interpreter, script = arg[i], arg[0]

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 700 " .. quote(dir)))
write_number(dir .. "/counter", 0)

print(("portalock %s: %d workers take turns on %s/demo.lock, %d rounds each")
  :format(portalock._VERSION, WORKERS, dir, ROUNDS))
print(("each round a worker holds the lock for %.1f s while it increments %s/counter")
  :format(WORK_SECONDS, dir))
print()
io.stdout:flush()

local start = uptime() -- the workers print seconds since this moment
local workers = {}
for id = 1, WORKERS do
  local command = table.concat({ quote(interpreter), quote(script), "worker", id, quote(dir),
    ("%.2f"):format(start) }, " ")
  workers[id] = assert(io.popen(command, "w")) -- the workers write to our stdout
end
for id = 1, WORKERS do
  workers[id]:close()
end

local count, expected = read_number(dir .. "/counter"), WORKERS * ROUNDS
print()
print(("counter = %d after %d increments: %s"):format(count, expected,
  count == expected and "none lost, the workers never held the lock at the same time"
    or "INCREMENTS WERE LOST"))

print()
print(("%d workers share a NamedBoundedSemaphore of %d slots (%s/demo.00.lock, ...): at most %d run at once")
  :format(SEM_WORKERS, SEM_MAXIMUM, dir, SEM_MAXIMUM))
print()
io.stdout:flush()
start = uptime()
for id = 1, SEM_WORKERS do
  local command = table.concat({ quote(interpreter), quote(script), "semworker", id, quote(dir),
    ("%.2f"):format(start) }, " ")
  workers[id] = assert(io.popen(command, "w"))
end
for id = 1, SEM_WORKERS do
  workers[id]:close()
end

-- The timeline: one row per worker, one column per 0.1 s, "#" while it ran.
local runs, events, finish = {}, {}, 0
for id = 1, SEM_WORKERS do
  local f = assert(io.open(dir .. "/sem." .. id))
  local entered, left = f:read("*n", "*n")
  f:close()
  os.remove(dir .. "/sem." .. id)
  runs[id] = { entered, left }
  events[#events + 1] = { entered, 1 }
  events[#events + 1] = { left, -1 }
  finish = math.max(finish, left)
end
print()
for id = 1, SEM_WORKERS do
  local row = {}
  for column = 0, math.floor(finish * 10) do
    local t = column / 10 + 0.05
    row[#row + 1] = (t >= runs[id][1] and t < runs[id][2]) and "#" or "."
  end
  print(("worker %d |%s|"):format(id, table.concat(row)))
end
table.sort(events, function(a, b)
  if a[1] ~= b[1] then
    return a[1] < b[1]
  end
  return a[2] < b[2] -- at equal times the exit came first
end)
local running, most = 0, 0
for _, event in ipairs(events) do
  running = running + event[2]
  most = math.max(most, running)
end
print(("at most %d workers ran at once (the semaphore allows %d): %s"):format(most, SEM_MAXIMUM,
  most <= SEM_MAXIMUM and "as promised" or "TOO MANY"))

os.remove(dir .. "/counter")
os.remove(dir .. "/demo.lock")
for slot = 0, SEM_MAXIMUM - 1 do
  os.remove(("%s/demo.%02d.lock"):format(dir, slot))
end
os.remove(dir)
os.exit((count == expected and most <= SEM_MAXIMUM) and 0 or 1)
