-- Four processes take turns on one lock file.
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

if arg[1] == "worker" then
  worker(tonumber(arg[2]), arg[3], tonumber(arg[4]))
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
os.remove(dir .. "/counter")
os.remove(dir .. "/demo.lock")
os.remove(dir)
os.exit(count == expected and 0 or 1)
