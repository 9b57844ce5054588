--- The configuration front end: one Lua file declares the named locks and semaphores an
-- application uses, and load() returns a registry of them.
--
--   directory "/var/lock/myapp"            -- where relative filenames go (absolute)
--   defaults { timeout = 30 }              -- options every resource starts from
--   lock "migrations" { timeout = 600 }    -- file: <directory>/migrations.lock
--   rlock "cache" { filename = "cache.lock" }
--   temporary_lock "build" {}
--   pid_file_lock "daemon" { filename = "/run/myapp.pid" }
--   bounded_semaphore "workers" { maximum = 4 }
--   semaphore "gpus" { value = 2 }
--
-- The file runs with nothing but this vocabulary (and a few harmless helpers: tostring,
-- tonumber, type, pairs, ipairs, select, math, and a vetted set of string methods), under an
-- instruction-count hook with the JIT off and a memory check. These limits catch mistakes
-- and runaway configs; they are not a security boundary against a hostile author.
local errors = require "portalock.errors"

local unpack = table.unpack or unpack -- luacheck: compat

local M = {}

errors.ConfigError = errors.define("ConfigError")

--- Limits of one run of a config file.
M.INSTRUCTION_LIMIT = 1000000
M.MEMORY_LIMIT_KB = 16 * 1024

--- Where load() looks when it is given no path, in order (after $PORTALOCK_CONFIG).
function M.default_paths()
  local home = os.getenv("HOME")
  local xdg = os.getenv("XDG_CONFIG_HOME") or (home and home .. "/.config")
  local paths = {"./portalock.lua"}
  if xdg then
    paths[#paths + 1] = xdg .. "/portalock/config.lua"
  end
  paths[#paths + 1] = "/etc/portalock/config.lua"
  return paths
end

-- What each kind of resource accepts: option -> checker(value) returning a problem or nil.
local function is_number(v) return type(v) == "number" and v == v end

local function nonnegative(v)
  if not is_number(v) or v < 0 then
    return "must be a number >= 0"
  end
end

local function positive(v)
  if not is_number(v) or v <= 0 then
    return "must be a number > 0"
  end
end

local function boolean(v)
  if type(v) ~= "boolean" then
    return "must be true or false"
  end
end

local function text(v)
  if type(v) ~= "string" or v == "" then
    return "must be a non-empty string"
  end
end

local function integer_from(low)
  return function(v)
    if not is_number(v) or v % 1 ~= 0 or v < low then
      return string.format("must be an integer >= %d", low)
    end
  end
end

local function absolute(v)
  -- string.sub, not v:sub: while a config runs, strings carry only the vetted methods
  if type(v) ~= "string" or string.sub(v, 1, 1) ~= "/" then
    return "must be an absolute path (starting with /)"
  end
end

local function one_of(...)
  local allowed = {...}
  return function(v)
    for _, a in ipairs(allowed) do
      if v == a then
        return nil
      end
    end
    return "must be one of " .. table.concat(allowed, ", ")
  end
end

local LOCK_OPTIONS = {
  filename = text, directory = absolute, timeout = nonnegative, check_interval = positive,
  fail_when_locked = boolean, flags = integer_from(0), backend = one_of("flock", "ofd", "posix"),
  perm = integer_from(0),
}
-- Copies the fields of each table in turn into `into`; returns `into`.
local function copy_into(into, ...)
  for i = 1, select("#", ...) do
    for key, value in pairs((select(i, ...))) do
      into[key] = value
    end
  end
  return into
end

local function with(base, extra)
  return copy_into({}, base, extra)
end

local KINDS = {
  lock = {class = "Lock", options = with(LOCK_OPTIONS, {mode = text}), file = true},
  rlock = {class = "RLock", options = with(LOCK_OPTIONS, {mode = text}), file = true},
  temporary_lock = {class = "TemporaryFileLock", options = LOCK_OPTIONS, file = true},
  pid_file_lock = {class = "PidFileLock", options = LOCK_OPTIONS, file = true},
  bounded_semaphore = {class = "NamedBoundedSemaphore", options = {
    maximum = integer_from(1), name = text, directory = absolute, timeout = nonnegative,
    check_interval = positive, filename_pattern = text}, required = {"maximum"}},
  semaphore = {class = "Semaphore", options = {
    value = integer_from(0), name = text, timeout = nonnegative, check_interval = positive,
    perm = integer_from(0)}},
}
local KIND_ORDER = {"lock", "rlock", "temporary_lock", "pid_file_lock", "bounded_semaphore", "semaphore"}

-- Options `defaults {}` may set: those of any kind.
local DEFAULT_OPTIONS = {}
for _, kind in pairs(KINDS) do
  for name, checker in pairs(kind.options) do
    DEFAULT_OPTIONS[name] = checker
  end
end

-- The string methods a config may call ("x"):upper() etc. Left out: rep and dump, and the
-- pattern functions (find, match, gmatch, gsub), whose backtracking runs inside C where the
-- instruction hook cannot stop it.
local STRING_METHODS = {"byte", "char", "format", "len", "lower", "reverse", "sub", "upper"}

-- How often (in VM instructions) the hook checks the limits: one string concatenation can
-- double a string, so the memory check must come often.
local HOOK_EVERY = 10

-- The source of the config being run ("=<chunkname>"), for fail() to find its frames.
local running_source

-- Raises a ConfigError naming the innermost line of the config itself on the stack (not a
-- line of this module, nor a C function the config called).
local function fail(fmt, ...)
  local where = ""
  for level = 2, 200 do
    local info = debug.getinfo(level, "Sl")
    if not info then
      break
    elseif info.source == running_source and info.currentline and info.currentline > 0 then
      where = string.format("%s:%d: ", string.sub(info.source, 2), info.currentline)
      break
    end
  end
  error({config_message = where .. string.format(fmt, ...)}, 0)
end

-- Lua shortens a long chunkname in its own messages (syntax and runtime errors): put it back
-- whole, so that every message starts "<chunkname>:<line>:".
local function with_chunkname(message, chunkname)
  message = tostring(message)
  if message:sub(1, #chunkname + 1) == chunkname .. ":" then
    return message
  end
  local prefix, line, rest = message:match("^(.-):(%d+): (.*)$")
  if prefix and prefix ~= "" and chunkname:sub(1, #prefix) == prefix then
    return string.format("%s:%s: %s", chunkname, line, rest)
  end
  return chunkname .. ": " .. message
end

-- The options table `given`, checked against `allowed` and copied: the config must not
-- change what was checked after checking it.
local function checked_options(what, given, allowed)
  if type(given) ~= "table" then
    fail("%s: expected a table of options {...}, got %s", what, type(given))
  end
  local options = copy_into({}, given)
  for key, value in pairs(options) do
    local checker = type(key) == "string" and allowed[key]
    if not checker then
      fail("%s: unknown option %s", what, type(key) == "string" and key or tostring(key))
    end
    local problem = checker(value)
    if problem then
      fail("%s: option %s (%s) %s", what, key, tostring(value), problem)
    end
  end
  return options
end

-- Builds the sandbox environment and the declarations it collects.
local function vocabulary()
  -- pending: names whose options table has not followed yet (lock "a" alone declares nothing)
  local declared = {global = {}, resources = {}, order = {}, pending = {}}
  local env = {}

  function env.directory(path)
    local problem = absolute(path)
    if problem then
      fail("directory (%s) %s", tostring(path), problem)
    end
    if declared.global.directory then
      fail("directory is declared twice")
    end
    declared.global.directory = path
  end

  function env.defaults(given)
    copy_into(declared.global, checked_options("defaults", given, DEFAULT_OPTIONS))
  end

  for kind_name, kind in pairs(KINDS) do
    env[kind_name] = function(name)
      if type(name) ~= "string" or not string.match(name, "^[%w_.%-]+$") then
        fail("%s: the name must be a string of letters, digits, '_', '.' or '-', got %s",
          kind_name, type(name) == "string" and string.format("%q", name) or type(name))
      end
      local line = debug.getinfo(2, "l").currentline
      local pending = {kind = kind_name, name = name, line = line}
      declared.pending[pending] = true
      return function(given)
        declared.pending[pending] = nil
        local what = string.format("%s %q", kind_name, name)
        local previous = declared.resources[name]
        if previous then
          fail("%s: the name is already declared (%s, line %d)", what, previous.kind, previous.line)
        end
        local options = checked_options(what, given, kind.options)
        for _, required in ipairs(kind.required or {}) do
          if options[required] == nil then
            fail("%s: option %s is required", what, required)
          end
        end
        declared.resources[name] = {kind = kind_name, name = name, options = options, line = line}
        declared.order[#declared.order + 1] = name
      end
    end
  end

  function env.redis()
    fail("redis connections are not supported yet (reserved for RedisLock)")
  end

  env.tostring, env.tonumber, env.type, env.pairs, env.ipairs, env.select =
    tostring, tonumber, type, pairs, ipairs, select
  env.math = copy_into({}, math)
  return env, declared
end

-- Runs `chunk` with the string metatable narrowed to the vetted methods, an instruction
-- count hook and a memory check; returns true or false, message.
local function run_guarded(chunk)
  local string_meta = getmetatable("")
  local saved_index = string_meta.__index
  local vetted = {}
  for _, name in ipairs(STRING_METHODS) do
    vetted[name] = string[name]
  end
  local jit = rawget(_G, "jit")
  if jit then
    jit.off(chunk, true)
  end
  local memory_base = collectgarbage("count")
  local count = 0
  local saved_hook = {debug.gethook()}
  local function guard()
    count = count + HOOK_EVERY
    if count > M.INSTRUCTION_LIMIT then
      debug.sethook()
      fail("the config ran more than %d instructions (a runaway loop?)", M.INSTRUCTION_LIMIT)
    end
    if collectgarbage("count") - memory_base > M.MEMORY_LIMIT_KB then
      debug.sethook()
      fail("the config used more than %d KiB of memory", M.MEMORY_LIMIT_KB)
    end
  end
  string_meta.__index = vetted
  debug.sethook(guard, "", HOOK_EVERY)
  local ok, err = pcall(chunk)
  debug.sethook()
  -- The host's string methods first: restoring a hook set from C ("external hook") fails.
  string_meta.__index = saved_index
  if type(saved_hook[1]) == "function" then
    debug.sethook(saved_hook[1], saved_hook[2], saved_hook[3])
  end
  if jit then
    jit.on(chunk, true)
  end
  return ok, err
end

-- `fields` carries errno and path when the file itself could not be read.
local function config_failure(message, fields)
  return nil, errors.new("ConfigError", message, fields)
end

-- A resource's constructor arguments.
local function resolve(resource, global)
  local options = {}
  local kind = KINDS[resource.kind]
  for key, value in pairs(global) do
    if kind.options[key] and key ~= "directory" then
      options[key] = value
    end
  end
  for key, value in pairs(resource.options) do
    options[key] = value
  end
  local directory = resource.options.directory or global.directory
  if kind.file then
    local filename = options.filename or (resource.name .. ".lock")
    if filename:sub(1, 1) ~= "/" then
      if not directory then
        return nil, string.format("%s %q: the filename %s is relative and no directory is declared "
          .. "(directory \"/absolute/path\")", resource.kind, resource.name, filename)
      end
      filename = directory .. "/" .. filename
    end
    options.filename, options.directory = nil, nil
    return {filename, options}
  elseif resource.kind == "bounded_semaphore" then
    local maximum = options.maximum
    options.maximum = nil
    options.name = options.name or resource.name
    options.directory = directory
    return {maximum, options}
  end
  local value = options.value or 1
  options.value = nil
  options.name = options.name or resource.name
  return {value, options}
end

local Registry = {}
Registry.__index = Registry

--- The object declared as `name` (made at the first call, the same object afterwards).
function Registry:get(name)
  local entry = self._entries[name]
  if not entry then
    error(string.format("portalock.config: no resource named %q is declared", tostring(name)), 2)
  end
  if entry.object == nil then
    local portalock = require "portalock"
    entry.object = portalock[KINDS[entry.kind].class](unpack(entry.args))
  end
  return entry.object
end

--- The declared names, in declaration order.
function Registry:names()
  local names = {}
  for i, name in ipairs(self._order) do
    names[i] = name
  end
  return names
end

--- What `name` was declared as, or nil: {kind =, class = (the portalock constructor's
--- name), file = (true for the kinds with one lock file), argument = (the filename, maximum
--- or value), options = (a copy of the constructor's options)}.
function Registry:declaration(name)
  local entry = self._entries[name]
  if not entry then
    return nil
  end
  local kind = KINDS[entry.kind]
  return {kind = entry.kind, class = kind.class, file = kind.file or false,
    argument = entry.args[1], options = copy_into({}, entry.args[2])}
end

--- The kind ("lock", "semaphore", ...) of a declared name, or nil.
function Registry:kind(name)
  local entry = self._entries[name]
  return entry and entry.kind
end

for _, kind_name in ipairs(KIND_ORDER) do
  Registry[kind_name] = function(self, name)
    local entry = self._entries[name]
    if entry and entry.kind ~= kind_name then
      error(string.format("portalock.config: %q is a %s, not a %s", name, entry.kind, kind_name), 2)
    end
    return self:get(name)
  end
end

--- Runs config source; returns a registry, or nil, err (err.kind == "ConfigError", the
--- message starting "<chunkname>:<line>:").
function M.load_string(source, chunkname)
  if type(source) ~= "string" then
    error("portalock.config.load_string: bad argument 'source' (expected a string, got "
      .. type(source) .. ")", 2)
  end
  chunkname = chunkname or "config"
  if source:byte(1) == 27 then
    return config_failure(chunkname .. ":1: binary chunks are not accepted")
  end
  local env, declared = vocabulary()
  running_source = "=" .. chunkname
  local chunk, message
  if setfenv then -- luacheck: compat
    chunk, message = loadstring(source, "=" .. chunkname) -- luacheck: compat
    if chunk then
      setfenv(chunk, env) -- luacheck: compat
    end
  else
    chunk, message = load(source, "=" .. chunkname, "t", env)
  end
  if not chunk then
    return config_failure(with_chunkname(message, chunkname))
  end
  local ok, err = run_guarded(chunk)
  if not ok then
    if type(err) == "table" and err.config_message then
      return config_failure(with_chunkname(err.config_message, chunkname))
    end
    return config_failure(with_chunkname(err, chunkname))
  end
  local missing
  for pending in pairs(declared.pending) do
    if not missing or pending.line < missing.line then
      missing = pending
    end
  end
  if missing then
    return config_failure(string.format("%s:%d: %s %q: no options table follows (write %s %q {})",
      chunkname, missing.line, missing.kind, missing.name, missing.kind, missing.name))
  end
  local entries = {}
  for _, name in ipairs(declared.order) do
    local resource = declared.resources[name]
    local args, problem = resolve(resource, declared.global)
    if not args then
      return config_failure(string.format("%s:%d: %s", chunkname, resource.line, problem))
    end
    entries[name] = {kind = resource.kind, args = args}
  end
  return setmetatable({_entries = entries, _order = declared.order}, Registry)
end

--- Finds the config file: `path` if given, else $PORTALOCK_CONFIG, else the first of
--- default_paths() that exists. Returns the path, or nil, message.
function M.find(path)
  if path then
    return path
  end
  local from_env = os.getenv("PORTALOCK_CONFIG")
  if from_env and from_env ~= "" then
    return from_env
  end
  for _, candidate in ipairs(M.default_paths()) do
    local f = io.open(candidate, "r")
    if f then
      f:close()
      return candidate
    end
  end
  return nil, "no config file: none given, PORTALOCK_CONFIG unset, and none of "
    .. table.concat(M.default_paths(), ", ") .. " exists"
end

--- Loads the config file at `path` (see find() when nil); a registry, or nil, err.
function M.load(path)
  local found, problem = M.find(path)
  if not found then
    return config_failure(problem)
  end
  local f, message, errno = io.open(found, "rb")
  if not f then
    return config_failure(tostring(message), {errno = errno, path = found})
  end
  local source = f:read("*a")
  f:close()
  return M.load_string(source, found)
end

return M
