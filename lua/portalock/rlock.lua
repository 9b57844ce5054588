--- RLock: a Lock whose acquires are counted per owner (the running coroutine, or the key
-- returned by opts.owner). A hold whose owner died or was collected counts as released and
-- is reclaimed at the next use of the object.
local core = require "portalock.core"
local errors = require "portalock.errors"
local holding = require "portalock.holding"
local lock = require "portalock.lock"
local owner = require "portalock.owner"

local M = {}

local KIND = {
  options = {"mode", "timeout", "check_interval", "fail_when_locked", "flags", "backend", "perm", "owner"},
  fail_when_locked = false,
}

local RLock = {}
local RLockMeta = lock.object_metatable(RLock, lock.family_getters({}))

local function check_rlock(self, method)
  local problem = lock.check_self(self, RLockMeta, "RLock", method)
  if problem then
    error(problem, 3)
  end
end

-- The token of the calling owner; raises (at the user's call) when opts.owner misbehaves.
local function current_token(self)
  if not self._owner_key then
    return owner.current_token()
  end
  local key = self._owner_key()
  if key == nil or key ~= key then
    error(string.format("bad result from option 'owner' of RLock '%s' (%s): must return a "
      .. "table key (not nil or NaN)", self._filename, tostring(key)), 3)
  end
  return owner.token(key)
end

--- Acquires one hold for the calling owner; returns the io handle or nil, err.
function RLock:acquire(opts)
  check_rlock(self, "acquire")
  local settings, problem = lock.acquire_settings(self, opts)
  if not settings then
    error(problem, 2)
  end
  local token = current_token(self)
  holding.refresh(self)
  if self._fh and self._h:owner() == token then
    local ok, errtab = self._h:try(token)
    if not ok then
      return nil, errors.from_core(errtab)
    end
    return self._fh
  end
  return lock.acquire_with(self, settings, token)
end

-- Drops one hold (or, with `all`, every hold) of `token`; the last one ends the hold on the
-- file: flushed, unlocked, closed.
local function release_holds(self, token, all)
  if all or self._h:count() == 1 then
    return holding.finish(self, self._h.release_all, token)
  end
  return errors.result(self._h:release(token))
end

--- Drops one hold of the calling owner. Raises when the caller does not hold it.
function RLock:release()
  check_rlock(self, "release")
  local token = current_token(self)
  if holding.refresh(self) == "detached" then
    return true
  end
  local holder = self._h:owner()
  if holder == 0 then
    error(string.format("cannot release RLock '%s': it is not held (released more often "
      .. "than acquired)", self._filename), 2)
  elseif holder ~= token then
    error(string.format("cannot release RLock '%s': it is held by another owner, not by "
      .. "the caller", self._filename), 2)
  end
  return release_holds(self, token, false)
end

--- Drops every hold of the calling owner (a no-op when it holds none).
local function release_owner(self)
  local token = current_token(self)
  holding.refresh(self)
  if not self._fh or self._h:owner() ~= token then
    return true
  end
  return release_holds(self, token, true)
end

function RLock:locked()
  check_rlock(self, "locked")
  holding.refresh(self)
  return self._fh ~= false
end

RLockMeta.__close = function(self)
  local ok, err = release_owner(self)
  if not ok then
    error(err)
  end
end

function M.RLock(filename, opts)
  local path, core_opts, defaults = lock.configure("RLock", KIND, filename, opts)
  if not path then
    error(core_opts, 2)
  end
  local handle, errtab = core.new_rlock(path, core_opts)
  if not handle then
    error(errors.from_core(errtab), 2)
  end
  local fields = lock.fields("RLock", handle, core_opts, defaults)
  fields._reentrant = true
  fields._owner_key = opts and opts.owner or false
  return setmetatable(fields, RLockMeta)
end

return M
