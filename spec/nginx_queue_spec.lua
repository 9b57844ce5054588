-- The worker's queue of waiters (portalock.nginx) and the attempts that do not wait
-- (fail_when_locked, timeout = 0): they go ahead of the queue (README, OpenResty), trying the
-- lock at once, rather than failing without a try behind a waiter.
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
