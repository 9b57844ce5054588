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

--- A validator for numbers under the core's `rule` (see core.rule_problem): Lua checks that
--- the value is a number (`type_problem` otherwise); the rule and its words are C's.
function M.rule(rule, type_problem)
  return function(func, value, name)
    if type(value) ~= "number" then
      return M.bad(func, name, value, type_problem)
    end
    local problem = core.rule_problem(rule, value)
    if problem then
      return M.bad(func, name, value, problem)
    end
  end
end

M.LOCK_SH, M.LOCK_EX, M.LOCK_NB, M.LOCK_UN = 1, 2, 4, 8
-- The core's backends (core.BACKENDS), as a set and as a message lists them.
local BACKENDS, BACKEND_NAMES = {}, {}
for i, name in ipairs(core.BACKENDS) do
  BACKENDS[name] = true
  BACKEND_NAMES[i] = string.format("%q", name)
end
local BACKENDS_LISTED = table.concat(BACKEND_NAMES, ", ", 1, #BACKEND_NAMES - 1) .. " or "
  .. BACKEND_NAMES[#BACKEND_NAMES]

-- The flags the core's rule accepts, asked once: lock() checks its flags at every call.
local VALID_FLAGS = {}
for flags = 0, M.LOCK_SH + M.LOCK_EX + M.LOCK_NB + M.LOCK_UN do
  VALID_FLAGS[flags] = not core.rule_problem("flags", flags) or nil
end

function M.is_exclusive(flags)
  return has_bits(flags, M.LOCK_EX)
end

M.timeout = M.rule("timeout", "must be a number of seconds")
M.check_interval = M.rule("check_interval", "must be a number of seconds")
local perm_rule = M.rule("perm", "must be a number (an integer permission)")

--- A file mode (the core's rule). Lua has no octal literals: a script that writes 0666 passes
--- the number 666, which the rule refuses; for a number that reads as a mode in octal (up to
--- 7777) the message then says how to write it.
function M.perm(func, value, name)
  local digits = is_integer(value) and value > core.PERM_MAX and value <= 7777
    and string.format("%d", value)
  if digits and digits:match("^[0-7]+$") then
    return M.bad(func, name, value, string.format("%s (Lua has no octal literals: 0%s is the "
      .. "number %s; write tonumber(\"%s\", 8))", core.rule_problem("perm", value), digits, digits,
      digits))
  end
  return perm_rule(func, value, name)
end
local flags_rule = M.rule("flags", "must be an integer combination of portalock.LOCK_* flags")

function M.flags(func, value, name)
  if not VALID_FLAGS[value] then
    return flags_rule(func, value, name)
  end
end

function M.boolean(func, value, name)
  if type(value) ~= "boolean" then
    return M.bad(func, name, value, "must be a boolean")
  end
end

--- The problem with portalocker-style positional acquire arguments (timeout, check_interval,
--- fail_when_locked; nil takes the object's), or nil: a RedisLock's or RedisSemaphore's.
function M.acquire_arguments(timeout, check_interval, fail_when_locked)
  return (timeout ~= nil and M.timeout("acquire", timeout, "timeout"))
    or (check_interval ~= nil and M.check_interval("acquire", check_interval, "check_interval"))
    or (fail_when_locked ~= nil and M.boolean("acquire", fail_when_locked, "fail_when_locked"))
    or nil
end

function M.backend(func, value, name)
  if not BACKENDS[value] then
    return M.bad(func, name, value, "must be " .. BACKENDS_LISTED)
  end
end

-- The core's rule of modes, and one of Lua's own: "+" before "b", as Lua's io.open takes a
-- mode, which the hand-over on 5.1/LuaJIT relies on.
function M.mode(func, value, name)
  if type(value) ~= "string" then
    return M.bad(func, name, value, "must be a string")
  end
  local problem = core.lock_mode_problem(value)
    or (not value:match("^[raw]%+?b?$") and 'must put "+" before "b", as io.open takes it')
  if problem then
    return M.bad(func, name, value, problem)
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

--- The core's rules that relate mode, flags and backend to one another (and, for the kinds
--- that are exclusive only, the flags to the kind).
function M.combination(func, mode, flags, backend, exclusive_only)
  local problem = exclusive_only and core.rule_problem("exclusive_flags", flags)
  if problem then
    return M.bad(func, "flags", flags, problem)
  end
  problem = core.lock_mode_problem(mode, flags, backend)
  if problem then
    return M.bad(func, "mode", mode, problem)
  end
end

return M
