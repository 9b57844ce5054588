--- Bookkeeping of the locks this Lua state holds, shared by Lock and RLock objects.
-- The kernel cannot tell two holders inside one process apart as another process would
-- see them (flock conflicts with our own other descriptors; waiting on them from a thread
-- that cannot yield would never end), so every held object is registered here, and
-- acquires compare the identity (device and inode) of their file with those of the held
-- files before asking the kernel. Identities, not paths: "/d/x", "/d/./x" and a path
-- through a symlinked directory are one file.
--
-- Fields used on lock objects: _h (core handle), _fh (io handle while held, else false),
-- _identity (of the held file once asked for, else false), _path (file of the kernel lock),
-- _exclusive, _fmode (io mode), _reentrant.
local core = require "portalock.core"
local errors = require "portalock.errors"
local nginx = require "portalock.nginx"
local owner = require "portalock.owner"

local M = {}

-- held object -> token of its holder; weak keys, so a dropped object does not pin anything
-- (its io handle keeps the kernel lock alone).
local held = setmetatable({}, {__mode = "k"})

-- Asked for only when another acquire needs it: an uncontended acquire saves the fstat.
local function identity_of(obj)
  if not obj._identity then
    obj._identity = obj._h:identity() or false
  end
  return obj._identity
end

local function io_error(what, obj, message, errno)
  return errors.new("LockException", string.format("%s '%s': %s", what, obj._path,
    tostring(message)), {errno = errno, path = obj._path})
end

--- What an attempt on `obj` locks onto: nothing on 5.2+ (the core makes the io handle
--- after locking), a fresh handle on /dev/null on 5.1 and LuaJIT, which can only wrap
--- descriptors in handles their own io library made. Returns the handle, or false, or
--- nil, err.
function M.target(obj)
  if core.STREAMS then
    return false
  end
  local fh, message, errno = io.open("/dev/null", obj._fmode)
  if not fh then
    return nil, errors.new("LockException", "cannot make an io handle for '" .. obj._path
      .. "': " .. message, {errno = errno, path = obj._path})
  end
  return fh
end

--- Closes a target whose attempt did not acquire (it holds no lock).
function M.discard(target)
  if target then
    target:close()
  end
end

--- Records a fresh acquisition by `token` and returns the io handle that holds the lock.
function M.take(obj, token, target)
  local fh, errtab = obj._h:hand_over(target or nil)
  if not fh then
    M.discard(target)
    if obj._reentrant then
      obj._h:release_all(token)
    else
      obj._h:release()
    end
    return nil, errors.from_core(errtab)
  end
  obj._fh = fh
  held[obj] = token
  local request = owner.request(token)
  if request then
    nginx.track(obj, request, M.end_hold)
  end
  return fh
end

-- The hold is over: forgets it here and in the worker's holds of requests.
local function forget(obj)
  held[obj] = nil
  obj._fh, obj._identity = false, false
  if nginx.inside then
    nginx.untrack(obj)
  end
end

--- Forgets a hold whose kernel lock is gone; closes the io handle if still open.
function M.drop(obj)
  local fh = obj._fh
  forget(obj)
  if io.type(fh) == "file" then
    fh:close()
  end
end

--- Ends the hold: flushes what the holder wrote while the lock still protects it, calls
--- `unlock(obj._h, ...)` (the core release, which unlocks but leaves the descriptor to the
--- handle), then closes the handle. Returns true, or nil and the first error.
function M.finish(obj, unlock, ...)
  local fh = obj._fh
  local flushed, flush_message, flush_errno = fh:flush()
  local ok, errtab = unlock(obj._h, ...)
  if not ok then
    obj._h:forget()
  end
  forget(obj)
  local closed, close_message, close_errno = fh:close()
  -- Only now, with the file closed and its waiters woken: closing a watch takes a while.
  obj._h:wait_done()
  if not ok then
    return nil, errors.from_core(errtab)
  elseif not flushed then
    return nil, io_error("write to", obj, flush_message, flush_errno)
  elseif not closed then
    return nil, io_error("close", obj, close_message, close_errno)
  end
  return true
end

--- Ends the hold of a held object whoever runs it (all the holds of its owner, for an RLock):
--- the release of a hold whose nginx request has ended. Returns true or nil, err.
function M.end_hold(obj)
  if obj._reentrant then
    return M.finish(obj, obj._h.release_all, held[obj])
  end
  return M.finish(obj, obj._h.release)
end

--- The token registered for a held object.
function M.holder(obj)
  return held[obj]
end

--- Brings the object up to date with the world: the user closed its io handle or the
--- process forked (the child's copy is detached and holds nothing): "detached"; an RLock
--- owner died, or the nginx request that held the object ended: "reclaimed". Returns nil
--- when nothing changed.
function M.refresh(obj)
  if not obj._fh then
    return nil
  elseif not obj._h:holds(obj._fh) then -- the user closed the handle, or this is a forked child
    obj._h:forget()
    M.drop(obj)
    return "detached"
  end
  local holder = held[obj]
  if owner.alive(holder) or not (obj._reentrant or owner.request(holder)) then
    return nil
  end
  M.end_hold(obj) -- like a dead process: a failed release has dropped the hold all the same
  return "reclaimed"
end

--- Whether another held object of this state stands in the way of `obj` for `token`:
--- nil, "self" (the same owner holds the file through another object: waiting can never
--- end) or "other" (another owner of this state holds it).
function M.conflict(obj, token)
  if next(held) == nil then
    return nil -- the common case: this state holds nothing, no need to stat the path
  end
  local identity = core.file_identity(obj._path)
  if not identity then
    return nil
  end
  local found
  for other, holder in pairs(held) do
    if other ~= obj and identity_of(other) == identity and not M.refresh(other)
      and (other._exclusive or obj._exclusive) then
      if holder == token then
        return "self"
      end
      found = "other"
    end
  end
  return found
end

return M
