--- portalock inside OpenResty (lua-nginx-module): who owns a hold, how long it lasts, and in
--- which order one worker's waiters are served.
---
--- * The owner of a hold taken while a request runs is that request (with its light threads
---   told apart), not the coroutine: lua-nginx-module hands one coroutine to request after
---   request. A request is told by its ngx.ctx table (so a handler must not replace ngx.ctx
---   while it holds a lock: it would hand its holds to a request that has ended).
--- * A hold ends with its request: lua-nginx-module keeps a request's ngx.ctx table in the
---   registry table "ngx_lua_ctx_tables" from its first use until the request is freed, so a
---   request whose table is no longer there has ended, deterministically, without the garbage
---   collector. Holds of ended requests are released by the next acquire that meets them and,
---   within SWEEP_INTERVAL, by a timer of the worker (armed only while requests hold).
--- * Waiters of one worker wait in arrival order, one queue per lock: only the first polls the
---   kernel (or Redis), every POLL_INTERVAL times the number of locks this worker's requests
---   wait for (so a worker tries at most 1 / POLL_INTERVAL times a second, however many locks
---   are contended); the others sleep until it is their turn. Across the workers, when
---   portalock was loaded in init_by_lua, only the first waiter that has waited longest tries
---   (portalock.nginx_board); else the first waiters of the workers try at the same pace. A
---   release does not wake a waiter of its own worker early: that would hand every release of
---   a busy worker to its own waiters. Waiters in other processes compete through the kernel.
local core = require "portalock.core"

local M = {}

-- How often the worker's timer looks for holds of ended requests: a forgotten hold outlives
-- its request by at most this (plus the time its release takes).
M.SWEEP_INTERVAL = 0.1
--- How often the first waiter of a queue tries again, when it is the worker's only queue
--- (check_interval, if shorter, wins).
M.POLL_INTERVAL = 0.002
-- A waiter that is not first checks this often whether the waiters before it are still there
-- (a request killed while waiting cannot leave the queue itself).
local QUEUE_CHECK = 0.1

local ngx = rawget(_G, "ngx")

--- True inside nginx's Lua VM.
M.inside = type(ngx) == "table" and type(ngx.get_phase) == "function"

--- coroutine.status in every phase: lua-nginx-module replaces it with a version that raises
--- outside the phases that may yield (log_by_lua, where a request may still release what it
--- holds), and keeps Lua's own as coroutine._status.
M.coroutine_status = rawget(coroutine, "_status") or coroutine.status

-- The board of first waiters (it needs LuaJIT's FFI, which nginx always has).
local board = M.inside and require "portalock.nginx_board"
if board and ngx.get_phase() == "init" then
  board.open() -- in the master, for the workers it forks
end

-- Phases without a request (and so without ngx.ctx): their holds belong to the coroutine.
local NO_REQUEST_PHASES = {init = true, init_worker = true, exit_worker = true}

-- ngx.ctx table -> the request's record {ctx (a weak reference to the table), ref (its index
-- in the registry's table, or false when not found), tokens (coroutine -> owner token)}. Weak
-- keys, and no strong reference from a record to its table (LuaJIT has no ephemerons): a table
-- the registry let go of and nobody else holds is collected, and its record with it.
local request_of_ctx = setmetatable({}, {__mode = "k"})
local WEAK_VALUE = {__mode = "v"}

local function ctx_tables()
  return debug.getregistry().ngx_lua_ctx_tables
end

local function registry_index(ctx)
  local tables = ctx_tables()
  if type(tables) == "table" then
    for ref, t in pairs(tables) do
      if rawequal(t, ctx) then
        return ref
      end
    end
  end
  return false
end

--- The running request's record, or nil outside a request (plain Lua, init phases).
function M.current_request()
  if not M.inside or NO_REQUEST_PHASES[ngx.get_phase()] then
    return nil
  end
  local ctx = ngx.ctx
  local request = request_of_ctx[ctx]
  if not request then
    request = {ctx = setmetatable({ctx}, WEAK_VALUE), ref = registry_index(ctx),
      tokens = setmetatable({}, {__mode = "k"})}
    request_of_ctx[ctx] = request
  end
  return request
end

--- False once the request has ended (its ngx.ctx table left the registry). Where the registry
--- table cannot be found, a request counts as running until its ngx.ctx table is collected.
function M.request_alive(request)
  local ctx = request.ctx[1]
  if ctx == nil or not request.ref then
    return ctx ~= nil
  end
  local tables = ctx_tables()
  return type(tables) ~= "table" or rawequal(tables[request.ref], ctx)
end

-- ------------------------------------------------------------------ holds of requests

-- object -> {request, release = function(object)}: every hold a request of this worker has.
-- Strong keys: a forgotten object must stay reachable until its hold is released.
local holds = {}
local held_count = 0
local sweeping = false

local function release_ended(object, hold)
  holds[object] = nil
  held_count = held_count - 1
  local ok, err = pcall(hold.release, object)
  if not ok then
    ngx.log(ngx.ERR, "portalock: releasing a hold of an ended request: ", tostring(err))
  end
end

--- Releases every hold whose request has ended; returns how many.
function M.sweep()
  local ended = {}
  for object, hold in pairs(holds) do
    if not M.request_alive(hold.request) then
      ended[#ended + 1] = object
    end
  end
  for _, object in ipairs(ended) do
    local hold = holds[object]
    if hold then
      release_ended(object, hold)
    end
  end
  return #ended
end

local function sweep_timer(premature)
  sweeping = false
  if premature then
    return
  end
  M.sweep()
  if held_count > 0 then
    M.arm_sweep()
  end
end

--- Arms the worker's sweep timer unless it is armed.
function M.arm_sweep()
  if sweeping then
    return
  end
  local ok, err = ngx.timer.at(M.SWEEP_INTERVAL, sweep_timer)
  if ok then
    sweeping = true
  elseif not ngx.worker.exiting() then -- (an exiting worker's holds end with it)
    ngx.log(ngx.WARN, "portalock: cannot arm the timer that releases holds of ended requests: ",
      tostring(err), "; they are released when another acquire meets them")
  end
end

--- Releases the hold of `object` now if its request has ended; true when it did.
function M.reclaim(object)
  local hold = holds[object]
  if hold and not M.request_alive(hold.request) then
    release_ended(object, hold)
    return true
  end
  return false
end

--- Records that `request` holds `object`; `release(object)` ends the hold whoever runs it.
function M.track(object, request, release)
  if not holds[object] then
    held_count = held_count + 1
  end
  holds[object] = {request = request, release = release}
  M.arm_sweep()
end

--- Forgets the hold of `object` (released by its owner).
function M.untrack(object)
  if holds[object] then
    holds[object] = nil
    held_count = held_count - 1
  end
end

--- How many holds of requests this worker has (for tests and status pages).
function M.held()
  return held_count
end

-- ------------------------------------------------------------------ arrival order

local semaphore -- ngx.semaphore, loaded at the first queue (it needs lua-resty-core)

-- key -> {first = index, last = index, [index] = waiter}; a waiter is {request, co, wake}.
local queues = {}
local queue_count = 0

local function queue_of(key)
  local queue = queues[key]
  if not queue then
    queue = {first = 1, last = 0}
    queues[key] = queue
    queue_count = queue_count + 1
  end
  return queue
end

local function gone(waiter)
  return waiter.left or not M.request_alive(waiter.request)
    or M.coroutine_status(waiter.co) == "dead"
end

local function withdraw(waiter)
  if waiter.post then
    board.withdraw(waiter.post)
    waiter.post = nil
  end
end

-- The first waiter that is still there, dropping those before it that are not.
local function head(queue)
  while queue.first <= queue.last do
    local waiter = queue[queue.first]
    if not gone(waiter) then
      return waiter
    end
    withdraw(waiter)
    queue[queue.first] = nil
    queue.first = queue.first + 1
  end
  return nil
end

--- True when a waiter of this worker waits for `key`: a newcomer queues behind it instead of
--- trying first.
function M.waiting(key)
  local queue = queues[key]
  if queue and not head(queue) then -- its waiters are gone (killed while they waited)
    queues[key] = nil
    queue_count = queue_count - 1
    return false
  end
  return queue ~= nil
end

--- Queues the running request for `key`; returns its waiter.
function M.join(key, request)
  semaphore = semaphore or require "ngx.semaphore"
  local queue = queue_of(key)
  local waiter = {key = key, request = request, co = coroutine.running(), wake = semaphore.new(0),
    since = core.monotonic()}
  queue.last = queue.last + 1
  queue[queue.last] = waiter
  return waiter
end

local function first(waiter)
  return head(queues[waiter.key]) == waiter
end

--- True when it is the turn of `waiter` to try: it is first in its worker's queue, and no
--- other worker's first waiter for its key has waited longer. `now`: monotonic seconds.
function M.may_try(waiter, now)
  if not first(waiter) then
    return false
  end
  waiter.post = waiter.post or board.post_for(waiter.key)
  return not waiter.post or board.may_try(waiter.post, waiter.since, now)
end

--- How long `waiter` sleeps between two steps at most: the first waiter at the pace of the
--- worker's tries (see POLL_INTERVAL, and at least every QUEUE_CHECK, its heartbeat on the
--- board), the others until their turn comes (QUEUE_CHECK, or woken by their predecessor).
function M.pace(waiter)
  return first(waiter) and math.min(M.POLL_INTERVAL * queue_count, QUEUE_CHECK) or QUEUE_CHECK
end

--- Sleeps `seconds` (whole milliseconds: ngx.semaphore truncates as ngx.sleep does) on the
--- waiter's semaphore, where its predecessor hands it the turn.
function M.nap(waiter, seconds)
  waiter.wake:wait(seconds)
end

--- Leaves the queue (acquired, gave up or failed) and hands the turn to the next waiter.
function M.leave(waiter)
  local queue = queues[waiter.key]
  local was_first = head(queue) == waiter
  waiter.left = true
  withdraw(waiter)
  local next_waiter = head(queue)
  if not next_waiter then
    queues[waiter.key] = nil
    queue_count = queue_count - 1
  elseif was_first then
    next_waiter.wake:post(1)
  end
end

return M
