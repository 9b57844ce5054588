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
--   redis "main" { url = "redis://db:6379/0", ttl = 30 }    -- a connection, not a resource
--   redis_lock "nightly" { redis = "main", timeout = 60 }   -- channel "nightly"
--   redis_semaphore "seats" { redis = "main", maximum = 3 }
--
-- The file runs with nothing but this vocabulary (and a few harmless helpers: tostring,
-- tonumber, type, pairs, ipairs, select, math, and a vetted set of string methods), in a
-- coroutine under an instruction-count hook with the JIT off and a memory limit that every
-- allocation answers to. These limits catch mistakes and runaway configs; they are not a
-- security boundary against a hostile author.
--
-- Option values are checked by the constructors themselves: load() builds every declared
-- object (constructors never touch the file system nor the network), and a constructor's
-- complaint becomes a ConfigError at the declaration's line. Only what the config resolves
-- itself (filename, directory, a Redis connection's name) has rules here. A `redis`
-- connection is checked at its own line by the RedisLock constructor (its URL by the core).
local check = require "portalock.check"
local core = require "portalock.core"
local errors = require "portalock.errors"
local semaphore = require "portalock.semaphore"

local unpack = table.unpack or unpack -- luacheck: compat

local M = {}

errors.ConfigError = errors.define("ConfigError")

--- Limits of one run of a config file.
M.INSTRUCTION_LIMIT = 1000000
M.MEMORY_LIMIT_KB = 16 * 1024
-- Seconds of CPU: one instruction may copy megabytes (a concatenation), so the instruction
-- count alone let a config that builds a large string in a loop run for 17 s.
M.CPU_LIMIT_SECONDS = 2
--- The largest config file load() reads (checked before reading it).
M.FILE_LIMIT_BYTES = 1024 * 1024

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

-- The two options the config resolves itself: checker(value) returns a problem or nil.
local function text(v)
  if type(v) ~= "string" or v == "" then
    return "must be a non-empty string"
  end
end

local function absolute(v)
  -- string.sub, not v:sub: while a config runs, strings carry only the vetted methods
  if type(v) ~= "string" or string.sub(v, 1, 1) ~= "/" then
    return "must be an absolute path (starting with /)"
  end
end

local OWN_CHECKS = {filename = text, directory = absolute}

-- The names in `list` as a set.
local function set(list)
  local names = {}
  for _, name in ipairs(list) do
    names[name] = true
  end
  return names
end

local LOCK_OPTIONS = {"filename", "directory", "timeout", "check_interval", "fail_when_locked",
  "flags", "backend", "perm"}
-- Copies the fields of each table in turn into `into`; returns `into`.
local function copy_into(into, ...)
  for i = 1, select("#", ...) do
    for key, value in pairs((select(i, ...))) do
      into[key] = value
    end
  end
  return into
end

-- What each kind of resource accepts: options is the set of option names.
local KINDS = {
  lock = {class = "Lock", options = set({"mode", unpack(LOCK_OPTIONS)}), file = true},
  rlock = {class = "RLock", options = set({"mode", unpack(LOCK_OPTIONS)}), file = true},
  temporary_lock = {class = "TemporaryFileLock", options = set(LOCK_OPTIONS), file = true},
  pid_file_lock = {class = "PidFileLock", options = set(LOCK_OPTIONS), file = true},
  bounded_semaphore = {class = "NamedBoundedSemaphore", options = set({"maximum", "name",
    "directory", "timeout", "check_interval", "filename_pattern", "perm"}), required = {"maximum"}},
  semaphore = {class = "Semaphore", options = set({"value", "name", "timeout",
    "check_interval", "perm"})},
  -- `redis` names a connection (a `redis` declaration); the constructor gets its settings.
  redis_lock = {class = "RedisLock", options = set({"redis", "channel", "timeout",
    "check_interval", "fail_when_locked", "visible"}), redis = true},
  redis_semaphore = {class = "RedisSemaphore", options = set({"redis", "name", "maximum",
    "timeout", "check_interval", "fail_when_locked"}), required = {"maximum"}, redis = true},
}
local KIND_ORDER = {"lock", "rlock", "temporary_lock", "pid_file_lock", "bounded_semaphore",
  "semaphore", "redis_lock", "redis_semaphore"}

-- A `redis "name" {...}` connection: its URL and the session settings of the objects that
-- name it (RedisLock's options of the same names, `url` being its `redis`).
local CONNECTION_OPTIONS = set({"url", "ttl", "connect_timeout", "command_timeout"})

-- Options `defaults {}` may set: those of any kind.
local DEFAULT_OPTIONS = {}
for _, kind in pairs(KINDS) do
  copy_into(DEFAULT_OPTIONS, kind.options)
end

-- The string methods a config may call ("x"):upper() etc. Left out: rep and dump, and the
-- pattern functions (find, match, gmatch, gsub), whose backtracking runs inside C where the
-- instruction hook cannot stop it.
local STRING_METHODS = {"byte", "char", "format", "len", "lower", "reverse", "sub", "upper"}

-- How often (in VM instructions) the hook checks the instruction and CPU limits (memory is
-- held by the allocator). PUC Lua counts the hook's own instructions too, so a hook called
-- every few instructions would spend much of the instruction limit on itself.
local HOOK_EVERY = 100

-- The source of the config being run ("=<chunkname>"), for fail() to find its frames.
local running_source

-- "<chunkname>:<line>: " for the innermost line of the config itself on the stack of
-- `thread` (not a line of this module, nor a C function the config called), or "".
-- `last_line` stands in for a frame whose line the runtime does not know (LuaJIT, after a
-- memory error raised inside a VM instruction): the config line the hook saw last.
local function where(thread, last_line)
  for level = 0, 200 do
    local info = debug.getinfo(thread, level, "Sl")
    if not info then
      break
    elseif info.source == running_source then
      local line = info.currentline and info.currentline > 0 and info.currentline or last_line
      if line then
        return string.format("%s:%d: ", string.sub(info.source, 2), line)
      end
    end
  end
  return ""
end

-- Raises a ConfigError at the config's innermost line on the running stack.
local function fail(fmt, ...)
  error({config_message = where((coroutine.running())) .. string.format(fmt, ...)}, 0)
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
    if type(key) ~= "string" or not allowed[key] then
      fail("%s: unknown option %s", what, check.describe(key))
    end
    local problem = OWN_CHECKS[key] and OWN_CHECKS[key](value)
    if problem then
      fail("%s: option %s (%s) %s", what, key, check.describe(value), problem)
    end
  end
  return options
end

-- Builds the sandbox environment and the declarations it collects.
local function vocabulary()
  -- pending: names whose options table has not followed yet (lock "a" alone declares nothing)
  local declared = {global = {}, default_lines = {}, resources = {}, order = {}, pending = {},
    connections = {}, connection_order = {}}
  local env = {}

  function env.directory(path)
    local problem = absolute(path)
    if problem then
      fail("directory (%s) %s", check.describe(path), problem)
    end
    if declared.global.directory then
      fail("directory is declared twice")
    end
    declared.global.directory = path
  end

  function env.defaults(given)
    local line = debug.getinfo(2, "l").currentline
    local options = checked_options("defaults", given, DEFAULT_OPTIONS)
    copy_into(declared.global, options)
    for key in pairs(options) do
      declared.default_lines[key] = line
    end
  end

  -- `kind_name "name" { options }`: the name and the options checked against `allowed` and
  -- `required`, and recorded in `namespace` (and `order`).
  local function declaration(kind_name, allowed, required, namespace, order)
    return function(name)
      if type(name) ~= "string" or not string.match(name, "^[%w_.%-]+$") then
        fail("%s: the name must be a string of letters, digits, '_', '.' or '-', got %s",
          kind_name, check.describe(name))
      end
      local line = debug.getinfo(2, "l").currentline
      local pending = {kind = kind_name, name = name, line = line}
      declared.pending[pending] = true
      return function(given)
        declared.pending[pending] = nil
        local what = string.format("%s %s", kind_name, check.describe(name))
        local previous = namespace[name]
        if previous then
          fail("%s: the name is already declared (%s, line %d)", what, previous.kind, previous.line)
        end
        local options = checked_options(what, given, allowed)
        for _, option in ipairs(required) do
          if options[option] == nil then
            fail("%s: option %s is required", what, option)
          end
        end
        namespace[name] = {kind = kind_name, name = name, options = options, line = line}
        order[#order + 1] = name
      end
    end
  end

  for kind_name, kind in pairs(KINDS) do
    env[kind_name] = declaration(kind_name, kind.options, kind.required or {},
      declared.resources, declared.order)
  end
  -- Connections have names of their own: a lock may be called like its connection.
  env.redis = declaration("redis", CONNECTION_OPTIONS, {}, declared.connections,
    declared.connection_order)

  env.tostring, env.tonumber, env.type, env.pairs, env.ipairs, env.select =
    tostring, tonumber, type, pairs, ipairs, select
  env.math = copy_into({}, math)
  return env, declared
end

-- The message of a load that ran out of its memory budget, at `position` ("file:line: ").
local function over_memory(position)
  return {config_message = position
    .. string.format("the config used more than %d KiB of memory", M.MEMORY_LIMIT_KB)}
end

-- Runs `chunk` in a coroutine with the string metatable narrowed to the vetted methods, an
-- instruction count hook, and every allocation limited (core.run_limited); returns true or
-- false, message, and then the bytes of the memory budget it used.
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
  local count, last_line = 0, nil
  local cpu_deadline = os.clock() + M.CPU_LIMIT_SECONDS
  local saved_hook = {debug.gethook()}
  local function guard()
    if jit then -- LuaJIT loses the line of a VM instruction that runs out of memory: note it
      local info = debug.getinfo(2, "Sl")
      if info and info.source == running_source then
        last_line = info.currentline
      end
    end
    count = count + HOOK_EVERY
    if count > M.INSTRUCTION_LIMIT then
      debug.sethook()
      fail("the config ran more than %d instructions (a runaway loop?)", M.INSTRUCTION_LIMIT)
    elseif os.clock() > cpu_deadline then
      debug.sethook()
      fail("the config ran for more than %g s of CPU (a runaway loop?)", M.CPU_LIMIT_SECONDS)
    end
  end
  -- A coroutine keeps its stack after an error: a refused allocation, whose message has no
  -- position, is then placed at the config line that asked for it.
  local co = coroutine.create(chunk)
  local ok, err
  string_meta.__index = vetted
  debug.sethook(co, guard, "", HOOK_EVERY) -- LuaJIT: for every coroutine, hence the restore below
  local exceeded, called, call_err, used = core.run_limited(M.MEMORY_LIMIT_KB * 1024, function()
    ok, err = coroutine.resume(co)
  end)
  debug.sethook(co)
  -- The host's string methods first: restoring a hook set from C ("external hook") fails.
  string_meta.__index = saved_index
  if type(saved_hook[1]) == "function" then
    debug.sethook(saved_hook[1], saved_hook[2], saved_hook[3])
  end
  if jit then
    jit.on(chunk, true)
  end
  if not called then
    ok, err = false, call_err
  end
  if not ok and exceeded and tostring(err):find("not enough memory", 1, true) then
    err = over_memory(where(co, last_line))
  end
  return ok, err, used
end

-- `fields` carries errno and path when the file itself could not be read.
local function config_failure(message, fields)
  return nil, errors.new("ConfigError", message, fields)
end

-- The options a connection gives the objects that name it: RedisLock's names.
local function connection_settings(connection)
  local settings = copy_into({}, connection.options)
  settings.redis, settings.url = settings.url, nil
  return settings
end

-- A resource's constructor arguments (`connections`: the declared ones, by name), or nil and
-- the problem.
local function resolve(resource, global, connections)
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
        return nil, string.format("the filename %s is relative and no directory is declared "
          .. "(directory \"/absolute/path\")", filename)
      end
      filename = directory .. "/" .. filename
    end
    options.filename, options.directory = nil, nil
    return {filename, options}
  elseif kind.redis then
    local connection = connections[options.redis]
    if options.redis ~= nil and not connection then
      local name = check.describe(options.redis)
      if type(options.redis) ~= "string" then
        return nil, string.format("option redis (%s) must name a connection (a string)", name)
      end
      return nil, string.format("no connection %s is declared (write redis %s { url = ... })",
        name, name)
    end
    local name = check.pick(options.channel, check.pick(options.name, resource.name))
    local maximum = options.maximum
    options.redis, options.channel, options.name, options.maximum = nil, nil, nil, nil
    copy_into(options, connection and connection_settings(connection) or {})
    if resource.kind == "redis_lock" then
      return {name, options}
    end
    return {name, maximum, options}
  elseif resource.kind == "bounded_semaphore" then
    local maximum = options.maximum
    options.maximum = nil
    options.name = options.name or resource.name
    options.directory = directory
    return {maximum, options}
  end
  local value = check.pick(options.value, semaphore.DEFAULT_VALUE)
  options.value = nil
  options.name = options.name or resource.name
  return {value, options}
end

-- Makes the object of kind `kind_name` from its constructor arguments, as the application
-- would: the constructor's checks are the config's. Returns it, or nil and the complaint.
local function build(kind_name, args)
  local portalock = require "portalock"
  -- a direct pcall: the constructor's error level then adds no position of this module
  local ok, object = pcall(portalock[KINDS[kind_name].class], unpack(args))
  if ok then
    return object
  end
  return nil, type(object) == "table" and object.message or tostring(object)
end

-- What the constructors are probed with for a `defaults` option alone.
local PROBE = {name = "defaults", global = {directory = "/"},
  base = {bounded_semaphore = {maximum = 1}, redis_semaphore = {maximum = 1}}}

-- A defaults value must suit at least one kind that takes the option (each resource that
-- inherits it is checked again in its own declaration). Returns nil or the first complaint.
local function default_problem(key, value, connections)
  local first
  for _, kind_name in ipairs(KIND_ORDER) do
    if KINDS[kind_name].options[key] then
      local options = copy_into({}, PROBE.base[kind_name] or {}, {[key] = value})
      local args, problem = resolve({kind = kind_name, name = PROBE.name, options = options},
        PROBE.global, connections)
      local object
      if args then
        object, problem = build(kind_name, args)
      end
      if object then
        return nil
      end
      first = first or problem
    end
  end
  return first
end

-- The first (by line) defaults value that no kind accepts: its line and the complaint.
local function defaults_problem(declared, progress)
  local lines = declared.default_lines
  local keys = {}
  for key in pairs(lines) do
    keys[#keys + 1] = key
  end
  table.sort(keys, function(a, b) return lines[a] < lines[b] end)
  for _, key in ipairs(keys) do
    progress.line = lines[key]
    local problem = OWN_CHECKS[key] == nil
      and default_problem(key, declared.global[key], declared.connections)
    if problem then
      return lines[key], string.format("defaults: option %s: %s", key, problem)
    end
  end
end

-- What a connection's options refuse: the RedisLock constructor's complaint about its settings,
-- or the core's about its URL (RedisLock would name it `redis`); nil when none.
local function connection_problem(connection)
  local settings = connection_settings(connection)
  local url = settings.redis
  settings.redis = nil
  local _, problem = build("redis_lock", {connection.name, settings})
  if problem or url == nil then
    return problem
  elseif type(url) ~= "string" then
    return string.format("option url (%s) must be a string (redis://[user:password@]host:port/db "
      .. "or unix:///path)", check.describe(url))
  end
  local _, url_problem = core.redis_parse_url(url)
  if url_problem and url_problem:sub(1, 13) ~= "bad argument " then
    return "bad argument 'url': " .. url_problem
  end
  return url_problem
end

local Registry = {}
Registry.__index = Registry

--- The object declared as `name` (made when the config was loaded; always the same object).
function Registry:get(name)
  local entry = self._entries[name]
  if not entry then
    error(string.format("portalock.config: no resource named %q is declared", tostring(name)), 2)
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
--- name), file = (true for the kinds with one lock file), redis = (true for the Redis kinds),
--- argument = (the filename, maximum or value; a Redis lock's channel, a Redis semaphore's
--- name), maximum = (a Redis semaphore's), options = (a copy of the constructor's options,
--- for a Redis kind with its connection's settings)}.
function Registry:declaration(name)
  local entry = self._entries[name]
  if not entry then
    return nil
  end
  local kind, args = KINDS[entry.kind], entry.args
  return {kind = entry.kind, class = kind.class, file = kind.file or false,
    redis = kind.redis or false, argument = args[1], maximum = #args == 3 and args[2] or nil,
    options = copy_into({}, args[#args])}
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

-- Checks what the config declared and builds every object: a registry, or nil and the
-- message. `progress.line` follows the declaration being checked.
local function declare(declared, chunkname, progress)
  local missing
  for pending in pairs(declared.pending) do
    if not missing or pending.line < missing.line then
      missing = pending
    end
  end
  if missing then
    local name = check.describe(missing.name)
    return nil, string.format("%s:%d: %s %s: no options table follows (write %s %s {})",
      chunkname, missing.line, missing.kind, name, missing.kind, name)
  end
  local defaults_line, defaults_complaint = defaults_problem(declared, progress)
  if defaults_line then
    return nil, string.format("%s:%d: %s", chunkname, defaults_line, defaults_complaint)
  end
  for _, name in ipairs(declared.connection_order) do
    local connection = declared.connections[name]
    progress.line = connection.line
    local problem = connection_problem(connection)
    if problem then
      return nil, string.format("%s:%d: redis %s: %s", chunkname, connection.line,
        check.describe(name), problem)
    end
  end
  local entries = {}
  for _, name in ipairs(declared.order) do
    local resource = declared.resources[name]
    progress.line = resource.line
    local args, problem = resolve(resource, declared.global, declared.connections)
    local object
    if args then
      object, problem = build(resource.kind, args)
    end
    if not object then
      return nil, string.format("%s:%d: %s %s: %s", chunkname, resource.line, resource.kind,
        check.describe(name), problem)
    end
    entries[name] = {kind = resource.kind, args = args, object = object}
  end
  return setmetatable({_entries = entries, _order = declared.order}, Registry)
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
  local ok, err, used = run_guarded(chunk)
  if not ok then
    if type(err) == "table" and err.config_message then
      return config_failure(with_chunkname(err.config_message, chunkname))
    end
    return config_failure(with_chunkname(err, chunkname))
  end
  -- Checking and building answer to what is left of the same budget: they copy the config's
  -- values (a filename joined to its directory) and quote them in messages.
  local progress = {}
  local registry, complaint
  local exceeded, called, call_err = core.run_limited(M.MEMORY_LIMIT_KB * 1024 - used, function()
    registry, complaint = declare(declared, chunkname, progress)
  end)
  if exceeded then
    local position = progress.line and string.format("%s:%d: ", chunkname, progress.line) or ""
    return config_failure(with_chunkname(over_memory(position).config_message, chunkname))
  elseif not called then
    error(call_err, 0)
  elseif not registry then
    return config_failure(complaint)
  end
  return registry
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
    -- lstat, not open: opening a FIFO would block
    if core.file_identity(candidate) then
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
  -- Never blocks (a FIFO) and never reads without bound (/dev/zero, a huge file).
  local source, message, errno = core.read_regular_file(found, M.FILE_LIMIT_BYTES)
  if not source then
    return config_failure(message, {errno = errno, path = found})
  end
  return M.load_string(source, found)
end

return M
