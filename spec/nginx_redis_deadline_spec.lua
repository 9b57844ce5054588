-- The waits of the Redis session inside nginx (portalock.redis_session, redis_cosocket) on an
-- ngx.semaphore until a deadline: a wait that reaches its deadline gives up with the session's
-- error, never raises ngx.semaphore's "no negative number" (the clock read again for the wait
-- may have passed the deadline) nor spins on sub-millisecond waits (which nginx truncates to
-- 0 ms, returned at once without yielding).
local nginx = require "spec.support.nginx"

-- One running timer per worker, taken by a timer that waits for the worker to exit: the
-- session's timer is dropped ("lua_max_running_timers are not enough"), so every acquire waits
-- for a session that never gets ready, up to its deadline.
local HTTP = [[
  lua_max_running_timers 1;
  init_worker_by_lua_block {
    ngx.timer.at(0, function()
      while not ngx.worker.exiting() do
        ngx.sleep(0.1)
      end
    end)
  }
]]

-- N acquires of a RedisLock whose session cannot start: "raised=R failed=F <last message>"
-- (an error raised is shown rather than a message returned).
local LOCATIONS = [[
    location = /deadline {
      content_by_lua_block {
        local portalock = require "portalock"
        local raised, failed, message, raised_message = 0, 0, "", nil
        for _ = 1, tonumber(ngx.var.arg_n) do
          local lock = portalock.RedisLock("deadline", {redis = "redis://127.0.0.1:1",
            connect_timeout = 0.005, command_timeout = 0.005, timeout = 0.05})
          local ok, held, err = pcall(lock.acquire, lock)
          if not ok then
            raised, raised_message = raised + 1, tostring(held)
          elseif not held then
            failed, message = failed + 1, tostring(err)
          end
        end
        ngx.say("raised=", raised, " failed=", failed, " ", raised_message or message)
      }
    }
]]

describe("the Redis session's waits inside nginx #nginx #redis", function()
  local missing = nginx.missing()
  if missing then
    pending(missing)
    return
  end

  local server

  setup(function()
    server = nginx.start({http = HTTP, locations = LOCATIONS})
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  it("gives up at the deadline of a session that never gets ready, without raising", function()
    local n = 200
    local body = server:get("/deadline?n=" .. n)
    assert.matches("^raised=0 failed=" .. n .. " LockException: .*not ready in time", body)
  end)
end)
