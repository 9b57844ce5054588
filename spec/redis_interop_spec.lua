local helper = require "spec.support.helper"
local redis_fixture = require "spec.support.redis_fixture"

-- Python's portalocker (Debian's python3-portalocker 2.2.1, with python3-redis) and ours share a
-- RedisLock on one channel: each side's holder blocks the other side's acquire.
local python = os.getenv("PORTALOCK_TEST_PYTHON") or helper.python

local function python_missing()
  if helper.run(helper.peer_env .. helper.quote(python)
    .. " -c 'import portalocker.redis' >/dev/null 2>&1") ~= 0 then
    return python .. " has no portalocker.redis (python3-portalocker, python3-redis)"
  end
end

local missing = redis_fixture.missing() or python_missing()
if missing then
  describe("RedisLock with Python portalocker", function() pending(missing) end)
  return
end

-- argv: port channel ready release. Holds portalocker's RedisLock until `release` exists.
local PYTHON_HOLDER = [[
import os, sys, time
from portalocker import redis as plredis
port, channel, ready, release = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lock = plredis.RedisLock(channel, timeout=10, redis_kwargs={'host': '127.0.0.1', 'port': port})
lock.acquire()
open(ready, 'w').close()
deadline = time.monotonic() + 30
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.01)
lock.release()
]]

-- argv: port channel timeout. One acquire: prints "acquired <seconds>" or "AlreadyLocked <seconds>".
local PYTHON_ACQUIRE = [[
import sys, time
import portalocker
from portalocker import redis as plredis
port, channel, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
lock = plredis.RedisLock(channel, redis_kwargs={'host': '127.0.0.1', 'port': port})
started = time.monotonic()
try:
    lock.acquire(timeout=timeout)
except portalocker.AlreadyLocked:
    print('AlreadyLocked %.3f' % (time.monotonic() - started))
else:
    print('acquired %.3f' % (time.monotonic() - started))
    lock.release()
]]

local function python_command(program, ...)
  local words = {helper.peer_env, helper.quote(python), "-c", helper.quote(program)}
  for i = 1, select("#", ...) do
    words[#words + 1] = helper.quote(tostring((select(i, ...))))
  end
  return table.concat(words, " ")
end

describe("RedisLock with Python portalocker", function()
  local fixture = redis_fixture.new("interop")
  setup(function() fixture:start() end)
  teardown(function() fixture:close() end)

  local function our_lock(channel)
    return fixture:lock(channel)
  end

  it("a Python holder blocks our acquire, and we get it once it releases", function()
    local channel = fixture:fresh("interop-python-holds")
    local py = fixture.dir .. "/py"
    local ready, release, log = py .. ".ready", py .. ".release", py .. ".log"
    local pid = helper.spawn(python_command(PYTHON_HOLDER, fixture.server.port, channel, ready, release), log)
    redis_fixture.await_ready(ready, log, "portalocker")
    local l = our_lock(channel)
    local obj, err = l:acquire(0.5)
    assert.is_nil(obj)
    assert.are.equal("AlreadyLocked", err.kind)
    -- a lock that portalocker does not see still sees portalocker's holder
    obj, err = fixture:lock(channel, {visible = false}):acquire(0.5)
    assert.is_nil(obj)
    assert.are.equal("AlreadyLocked", err.kind)
    -- status() names portalocker's holder as one (no portalock holder, no waiter left)
    local st = assert(l:status())
    assert.are.same({0, 1, 0}, {#st.holders, st.foreign, st.waiting})
    helper.write(release, "")
    assert.are.equal(l, assert(l:acquire(10)))
    assert(helper.wait_until(function() return not helper.alive(pid) end, 15))
    assert.is_true(l:release())
  end)

  it("our holder blocks portalocker's acquire, and it gets it once we release", function()
    local channel = fixture:fresh("interop-lua-holds")
    local l = our_lock(channel)
    assert(l:acquire())
    local out, status = helper.capture(python_command(PYTHON_ACQUIRE, fixture.server.port, channel, 1))
    assert.are.equal(0, status, out)
    assert.matches("^AlreadyLocked", out)
    assert.is_true(l:release())
    out, status = helper.capture(python_command(PYTHON_ACQUIRE, fixture.server.port, channel, 5))
    assert.are.equal(0, status, out)
    assert.matches("^acquired", out)
  end)
end)
