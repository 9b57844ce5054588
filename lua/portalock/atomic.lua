--- open_atomic: write a temporary file next to the target, publish it only on commit().
-- The handle is a userdata made by portalock.core (see bindings/lua/l_atomic.c): it is not
-- an io file, but offers write, flush and seek like one, plus commit, abort and temp_path.
-- Its __gc (every runtime) and __close (5.4) remove the temporary of an uncommitted handle.
local core = require "portalock.core"
local check = require "portalock.check"
local errors = require "portalock.errors"

local M = {}

local WHENCE = {set = true, cur = true, ["end"] = true}

local function check_options(opts)
  return check.options_with("open_atomic", opts, {{"binary", check.boolean}, {"replace", check.boolean}})
end

-- Raises misuse (kind "Invalid") at the caller's caller; wraps any other failure. Never call
-- it as a tail call (`return nil, failure(e)` is fine): the error level counts frames.
local function failure(errtab)
  if errtab.kind == "Invalid" then
    error(errtab.message, 3)
  end
  return errors.new(errtab.kind, errtab.message, {
    errno = errtab.errno,
    path = errtab.path,
    published = errtab.published,
    kept = errtab.kept,
  })
end

local is_integer = check.is_integer

-- What io's write produces for a number: integers with %d, floats with %.14g.
local function number_text(value)
  if math.type and math.type(value) == "integer" then
    return string.format("%d", value)
  end
  return string.format("%.14g", value)
end

local methods = core.atomic_methods

--- h:write(...): strings and numbers, as file:write. Returns h, or nil, err; a failure
--- poisons the handle (commit then aborts).
function methods:write(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local value = select(i, ...)
    if type(value) == "number" then
      parts[i] = number_text(value)
    elseif type(value) == "string" then
      parts[i] = value
    else
      error(check.bad("write", "#" .. i, value, "must be a string or a number"), 2)
    end
  end
  local ok, errtab = core.atomic_write(self, n == 1 and parts[1] or table.concat(parts))
  if not ok then
    return nil, failure(errtab)
  end
  return self
end

--- h:flush(): writes buffered data to the temporary. Returns h, or nil, err.
function methods:flush()
  local ok, errtab = core.atomic_flush(self)
  if not ok then
    return nil, failure(errtab)
  end
  return self
end

--- h:seek([whence [, offset]]): as file:seek ("cur", 0 by default). Returns the position.
function methods:seek(whence, offset)
  whence = whence == nil and "cur" or whence
  offset = offset == nil and 0 or offset
  if not WHENCE[whence] then
    error(check.bad("seek", "whence", whence, 'must be "set", "cur" or "end"'), 2)
  elseif not is_integer(offset) then
    error(check.bad("seek", "offset", offset, "must be an integer"), 2)
  end
  local pos, errtab = core.atomic_seek(self, whence, offset)
  if not pos then
    return nil, failure(errtab)
  end
  return math.tointeger and math.tointeger(pos) or pos
end

--- h:commit(): true, or nil, err (err.published when only the directory fsync failed,
--- err.kept when a refused publication kept the payload in the temporary: replace = false
--- and the file exists, or the target became a device, FIFO, socket or directory).
function methods:commit()
  local ok, errtab = core.atomic_commit(self)
  if not ok then
    return nil, failure(errtab)
  end
  return true
end

--- h:abort(): removes the temporary; a no-op on a committed or aborted handle.
function methods:abort()
  local ok, errtab = core.atomic_abort(self)
  if not ok then
    return nil, failure(errtab)
  end
  return true
end

--- h:temp_path(): the temporary's path while it exists (before commit, or where a refused
--- commit kept the payload), else nil.
function methods:temp_path()
  local _, _, temp = core.atomic_info(self)
  return temp
end

--- h:state(): "open", "kept" (see temp_path) or "closed"; and whether a write failed.
function methods:state()
  local state, _, _, poisoned = core.atomic_info(self)
  return state, poisoned
end

--- portalock.open_atomic(filename, opts) -> handle | nil, err.
--- opts.replace (default true): replace an existing filename; opts.binary: accepted (POSIX
--- makes no difference between text and binary).
function M.open_atomic(filename, opts)
  local problem = check.filename("open_atomic", filename, "filename") or check_options(opts)
  if problem then
    error(problem, 2)
  end
  local replace = true
  if opts and opts.replace ~= nil then
    replace = opts.replace
  end
  local handle, errtab = core.atomic_open(filename, replace)
  if not handle then
    return nil, failure(errtab)
  end
  return handle
end

return M
