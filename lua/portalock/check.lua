--- Argument validation: every misuse message of the public API is produced here.
-- Validators return nothing when the value is fine and a message otherwise, so that the
-- public function itself raises with `error(message, 2)` and the error points at its caller.
local core = require "portalock.core"

local M = {}

-- How much of a string value a message quotes: a message stays readable (and small) whatever
-- was passed.
local QUOTED_BYTES = 60

--- A value as a message quotes it: a string in quotes (its first QUOTED_BYTES, then its
--- length), a number, a boolean, nil, or else the type's name.
function M.describe(value)
  if type(value) == "string" then
    if #value > QUOTED_BYTES then
      return string.format("%q... (%d bytes)", value:sub(1, QUOTED_BYTES), #value)
    end
    return string.format("%q", value)
  elseif type(value) == "number" then
    if value ~= value then
      return "nan"
    end
    return string.format("%.14g", value)
  elseif type(value) == "boolean" or value == nil then
    return tostring(value)
  end
  return type(value)
end

--- `bad argument 'timeout' to 'Lock' (-1): must be >= 0 ...`
function M.bad(func, name, value, problem)
  return string.format("bad argument '%s' to '%s' (%s): %s", name, func, M.describe(value), problem)
end

--- True for a finite number without a fractional part (5.1 has no integer subtype).
function M.is_integer(value)
  return type(value) == "number" and value == math.floor(value)
    and value > -math.huge and value < math.huge
end
local is_integer = M.is_integer

--- `value`, or `default` when it is nil (false stays false).
function M.pick(value, default)
  if value == nil then
    return default
  end
  return value
end

local function has_bits(flags, bits)
  return math.floor(flags / bits) % 2 == 1
end

M.LOCK_SH, M.LOCK_EX, M.LOCK_NB, M.LOCK_UN = 1, 2, 4, 8
local VALID_FLAGS = {[1] = true, [2] = true, [5] = true, [6] = true}
local BACKENDS = {flock = true, ofd = true, posix = true}

function M.is_exclusive(flags)
  return has_bits(flags, M.LOCK_EX)
end

function M.timeout(func, value, name)
  name = name or "timeout"
  if type(value) ~= "number" then
    return M.bad(func, name, value, "must be a number of seconds")
  elseif value ~= value then
    return M.bad(func, name, value, "must be a number of seconds, not NaN")
  elseif value < 0 then
    return M.bad(func, name, value, "must be >= 0 (use math.huge to wait forever)")
  end
end

-- The rule of the C core's option check (pl_check_timing), which has the last word.
function M.check_interval(func, value, name)
  if type(value) ~= "number" or value ~= value then
    return M.bad(func, name, value, "must be a number of seconds")
  elseif value < 0 or value == math.huge then -- the C core re-checks at least this often
    return M.bad(func, name, value, string.format(
      "must be a finite number >= 0 (0 re-checks every %g s)", core.CHECK_INTERVAL_MIN))
  end
end

function M.boolean(func, value, name)
  if type(value) ~= "boolean" then
    return M.bad(func, name, value, "must be a boolean")
  end
end

function M.flags(func, value, name)
  if not is_integer(value) then
    return M.bad(func, name, value, "must be an integer combination of portalock.LOCK_* flags")
  elseif value == M.LOCK_UN then
    return M.bad(func, name, value, "LOCK_UN belongs to portalock.unlock()")
  elseif not VALID_FLAGS[value] then
    return M.bad(func, name, value, "must be exactly one of LOCK_SH, LOCK_EX, optionally plus LOCK_NB")
  end
end

function M.backend(func, value, name)
  if not BACKENDS[value] then
    return M.bad(func, name, value, 'must be "flock", "ofd" or "posix"')
  end
end

-- Exactly the modes Lua's own io.open accepts, which the hand-over on 5.1/LuaJIT relies on.
function M.mode(func, value, name)
  if type(value) ~= "string" or not value:match("^[raw]%+?b?$") then
    return M.bad(func, name, value, 'must be one of "r", "r+", "a", "a+", "w", "w+" (optionally with "b")')
  end
end

function M.perm(func, value, name)
  if not is_integer(value) or value < 0 or value > core.PERM_MAX then
    return M.bad(func, name, value,
      string.format('must be an integer in 0..0o%o (e.g. tonumber("644", 8))', core.PERM_MAX))
  end
end

function M.func(func, value, name)
  if type(value) ~= "function" then
    return M.bad(func, name, value, "must be a function")
  end
end

function M.filename(func, value, name)
  if type(value) ~= "string" then
    return M.bad(func, name, value, "must be a string")
  elseif value == "" then
    return M.bad(func, name, value, "must not be empty")
  elseif value:find("\0", 1, true) then
    return M.bad(func, name, value, "must not contain NUL bytes")
  end
end

-- An io handle or a descriptor number, for the low-level lock()/unlock().
function M.file(func, value, name)
  local kind = io.type(value)
  if kind == "closed file" then
    return M.bad(func, name, value, "the file is closed")
  elseif kind == nil and not (is_integer(value) and value >= 0 and value <= core.FD_MAX) then
    return M.bad(func, name, value,
      string.format("must be an open io handle or a descriptor number in 0..%d", core.FD_MAX))
  end
end

local OPTION_CHECKS = {
  mode = M.mode,
  timeout = M.timeout,
  check_interval = M.check_interval,
  fail_when_locked = M.boolean,
  flags = M.flags,
  backend = M.backend,
  perm = M.perm,
  owner = M.func,
}

local function allows(checks, key)
  for _, entry in ipairs(checks) do
    if entry[1] == key then
      return true
    end
  end
  return false
end

--- Checks an options table against `checks`, an ordered list of {name, validator}: nil or
--- a table whose keys are all named there and whose values pass their validators.
function M.options_with(func, opts, checks)
  if opts == nil then
    return
  elseif type(opts) ~= "table" then
    return M.bad(func, "opts", opts, "must be a table or nil")
  end
  for key in pairs(opts) do
    if not allows(checks, key) then
      local names = {}
      for i, entry in ipairs(checks) do
        names[i] = entry[1]
      end
      return string.format("bad argument 'opts' to '%s': unknown option %s (valid options: %s)",
        func, M.describe(key), table.concat(names, ", "))
    end
  end
  for _, entry in ipairs(checks) do
    local value = opts[entry[1]]
    if value ~= nil then
      local problem = entry[2](func, value, entry[1])
      if problem then
        return problem
      end
    end
  end
end

-- allowed list -> its checks for options_with, made on first use.
local checks_of = setmetatable({}, {__mode = "k"})

--- Checks the Lock family's options: `allowed` lists names of OPTION_CHECKS.
function M.options(func, opts, allowed)
  if opts == nil then
    return
  end
  local checks = checks_of[allowed]
  if not checks then
    checks = {}
    for i, name in ipairs(allowed) do
      checks[i] = {name, OPTION_CHECKS[name]}
    end
    checks_of[allowed] = checks
  end
  return M.options_with(func, opts, checks)
end

local function readable(mode)
  return mode:sub(1, 1) == "r" or mode:find("+", 1, true) ~= nil
end

local function writable(mode)
  return mode:sub(1, 1) ~= "r" or mode:find("+", 1, true) ~= nil
end

--- The checks that relate mode, flags and backend to one another.
function M.combination(func, mode, flags, backend, exclusive_only)
  local exclusive = M.is_exclusive(flags)
  if exclusive_only and not exclusive then
    return M.bad(func, "flags", flags, "this lock is exclusive only: use LOCK_EX (optionally + LOCK_NB)")
  elseif mode:sub(1, 1) == "w" and not exclusive then
    return M.bad(func, "mode", mode, 'a "w" mode truncates, which needs LOCK_EX, not LOCK_SH')
  elseif backend ~= "flock" and not exclusive and not readable(mode) then
    return M.bad(func, "mode", mode, "a shared " .. backend .. " lock needs a readable mode")
  elseif backend ~= "flock" and exclusive and not writable(mode) then
    return M.bad(func, "mode", mode, "an exclusive " .. backend .. " lock needs a writable mode")
  end
end

return M
