--- Arrival order across the workers of one nginx: a board in memory that the master maps
--- before it forks its workers (so it exists only when portalock is loaded in init_by_lua),
--- where the first waiter of each worker's queue for a lock posts since when it waits. A first
--- waiter tries only while no other worker's first waiter for that lock has waited longer, so
--- a lock freed goes to the oldest waiter of the nginx, whichever worker it waits in.
---
--- Posts are plain stores read without locks (a torn or stale read costs one early or late
--- try, never a lost lock: the kernel still decides who gets it), and every post carries a
--- heartbeat, so that a worker that died, or a waiter killed with its request, stops
--- counting within STALE seconds. Locks are told apart by two CRC-32 checksums of their key;
--- those of one bucket that differ ignore each other.
local ffi = require "ffi"

local M = {}

local BUCKETS = 512
local WORKERS = 64
-- A post older than this no longer counts (its first waiter heartbeats at every try, at
-- least every 0.1 s: see portalock.nginx).
local STALE = 0.5

ffi.cdef [[
  typedef struct portalock_board_post { uint32_t sum1, sum2; double since, beat; } portalock_board_post;
]]
pcall(ffi.cdef, "void *mmap(void *, size_t, int, int, int, long);")
pcall(ffi.cdef, "int munmap(void *, size_t);")

local PROT_READ_WRITE = 3 -- PROT_READ | PROT_WRITE
local MAP_SHARED_ANONYMOUS = 0x21 -- MAP_SHARED | MAP_ANONYMOUS (Linux)
local MAP_FAILED = ffi.cast("void *", -1)

local board -- portalock_board_post[BUCKETS * WORKERS], or nil

--- Maps the board; to be called in the master (init_by_lua), before it forks its workers.
--- Returns true, or false when there is no board (another system, no memory).
function M.open()
  if board then
    return true
  end
  if ffi.os ~= "Linux" then
    return false
  end
  local size = ffi.sizeof("portalock_board_post") * BUCKETS * WORKERS
  local memory = ffi.C.mmap(nil, size, PROT_READ_WRITE, MAP_SHARED_ANONYMOUS, -1, 0)
  if memory == MAP_FAILED then
    return false
  end
  -- Zeroed: no posts. Unmapped when the Lua VM that mapped it closes: a reload (HUP) gives the
  -- master a new VM, which maps a new board, and the old one would stay mapped in the master
  -- and in every worker it forks from then on.
  board = ffi.gc(ffi.cast("portalock_board_post *", memory), function(mapped)
    ffi.C.munmap(mapped, size)
  end)
  return true
end

local ngx = rawget(_G, "ngx")

-- This worker's column, or nil when it has none (no board, not a worker, too many workers).
local function column()
  local id = board and ngx.worker.id()
  if id and id < WORKERS then
    return id
  end
end

--- A post for the key `key` (a string), or nil when there is no board for this worker.
function M.post_for(key)
  local id = column()
  if not id then
    return nil
  end
  local sum1, sum2 = ngx.crc32_long(key), ngx.crc32_long("portalock:" .. key)
  local bucket = sum1 % BUCKETS
  return {row = bucket * WORKERS, id = id, sum1 = sum1, sum2 = sum2}
end

--- Posts that this worker's first waiter for the post's key waits since `since` (monotonic
--- seconds, the clock every process of the machine shares), as of `now`. Returns true when
--- it may try: no other worker's live post for the key is older.
function M.may_try(post, since, now)
  local mine = board[post.row + post.id]
  mine.sum1, mine.sum2, mine.since, mine.beat = post.sum1, post.sum2, since, now
  for id = 0, math.min(WORKERS, ngx.worker.count()) - 1 do
    local other = board[post.row + id]
    if id ~= post.id and other.sum1 == post.sum1 and other.sum2 == post.sum2
      and now - other.beat < STALE and other.since < since then
      return false
    end
  end
  return true
end

--- Withdraws this worker's post (its first waiter acquired, gave up or left the queue).
function M.withdraw(post)
  local mine = board[post.row + post.id]
  if mine.sum1 == post.sum1 and mine.sum2 == post.sum2 then
    mine.beat = 0
  end
end

return M
