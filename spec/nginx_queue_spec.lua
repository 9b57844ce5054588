-- The worker's queue of waiters (portalock.nginx) and its board across the workers
-- (portalock.nginx_board): the attempts that do not wait (fail_when_locked, timeout = 0) go
-- ahead of the queue (README, OpenResty), trying the lock at once rather than failing without
-- a try behind a waiter; and the board the master maps stays one mapping across reloads.
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"

-- In one request: a holder, a light thread queued behind it (it waits), the holder released,
-- then an attempt that does not wait (OPTS) on a third object, before the queued thread has
-- run again. Prints that attempt's outcome ("acquired" or its error), then the thread's.
local LOCATIONS = [[
    location = /ahead {
      content_by_lua_block {
        local portalock = require "portalock"
        local dir = os.getenv("@LOCK_DIR_ENV@")
        local make
        if ngx.var.arg_class == "Lock" then
          make = function(opts) return portalock.Lock(dir .. "/ahead.lock", opts) end
        else
          make = function(opts)
            return portalock.NamedBoundedSemaphore(1, {name = "ahead", directory = dir,
              timeout = opts.timeout, fail_when_locked = opts.fail_when_locked})
          end
        end
        local holder = make({timeout = 0})
        assert(holder:acquire())
        local queued = ngx.thread.spawn(function()
          local waiter = make({timeout = 5})
          local held, err = waiter:acquire()
          if held then
            waiter:release()
          end
          return held and "acquired" or tostring(err)
        end)
        holder:release()
        local opts = ngx.var.arg_opts == "timeout0" and {timeout = 0} or {fail_when_locked = true}
        local attempt = make(opts)
        local held, err = attempt:acquire()
        ngx.say(held and "acquired" or tostring(err))
        if held then
          attempt:release()
        end
        local _, outcome = ngx.thread.wait(queued)
        ngx.say(outcome)
      }
    }
]]

describe("attempts that do not wait inside nginx #nginx", function()
  local missing = nginx.missing()
  if missing then
    pending(missing)
    return
  end

  local server

  setup(function()
    server = nginx.start({locations = LOCATIONS:gsub("@LOCK_DIR_ENV@", nginx.LOCK_DIR_ENV)})
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  for _, class in ipairs({"Lock", "NamedBoundedSemaphore"}) do
    for _, opts in ipairs({"fail_when_locked", "timeout0"}) do
      it("tries a free " .. class .. " ahead of a queued waiter (" .. opts .. ")", function()
        assert.equal("acquired\nacquired\n",
          server:get("/ahead?class=" .. class .. "&opts=" .. opts))
      end)
    end
  end
end)

describe("the board of first waiters across reloads #nginx", function()
  local missing = nginx.missing()
  if missing then
    pending(missing)
    return
  end

  local server

  setup(function()
    server = nginx.start({init = 'require "portalock"'}) -- the master maps the board
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  -- The master's shared anonymous mappings of the board's size.
  local BOARD_BYTES = 24 * 512 * 64 -- portalock_board_post[BUCKETS * WORKERS]
  local function boards()
    local count = 0
    for line in io.lines("/proc/" .. server.pid .. "/maps") do
      local first, last = line:match("^(%x+)%-(%x+) rw%-s .*/dev/zero")
      if first and tonumber(last, 16) - tonumber(first, 16) == BOARD_BYTES then
        count = count + 1
      end
    end
    return count
  end

  -- nginx -s reload, until every worker is one of the new generation.
  local function reload()
    local before = {}
    for _, pid in ipairs(server:workers()) do
      before[pid] = true
    end
    assert(helper.run("kill -HUP " .. server.pid) == 0)
    assert(helper.wait_until(function()
      local ok, pids = pcall(server.workers, server)
      if not ok then
        return false
      end
      for _, pid in ipairs(pids) do
        if before[pid] then
          return false
        end
      end
      return true
    end, 20), "the reload did not replace the workers")
  end

  it("is unmapped from the master with the Lua VM a reload replaces", function()
    assert.equal(1, boards())
    for _ = 1, 3 do
      reload()
    end
    assert.equal(1, boards())
  end)
end)
