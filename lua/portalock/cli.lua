--- The `portalock` command: lock, run, status and write from the shell. bin/portalock calls
--- main(arg) and exits with the status it returns. Options and exit codes follow util-linux
--- flock(1) where the two overlap; the usage text (cli/usage.lua) is the reference, the
--- options are read by cli/args.lua.
local core = require "portalock.core"
local portalock = require "portalock"
local lock_family = require "portalock.lock"

local failure = require "portalock.cli.failure"
local args_parser = require "portalock.cli.args"
local usage = require "portalock.cli.usage"

local M = {}

local EXIT, fail, usage_error = failure.EXIT, failure.fail, failure.usage_error
local ERRNO = core.ERRNO

M.usage = usage.usage

local function say(fmt, ...)
  io.stderr:write("portalock: ", fmt:format(...), "\n")
end

-- The errnos of a system that fails (exit 71), as opposed to a file that cannot be opened
-- (66: missing, not permitted, not a regular file, ...).
local SYSTEM_ERRNOS = {
  [ERRNO.ENOLCK] = true, [ERRNO.ENOMEM] = true, [ERRNO.EIO] = true, [ERRNO.EDEADLK] = true,
  [ERRNO.EMFILE] = true, [ERRNO.ENFILE] = true, [ERRNO.EAGAIN] = true,
}

-- The exit status for an acquire that returned nil, err; says why unless it is contention.
local function acquire_failure(err, opts)
  if err.kind == "AlreadyLocked" then
    if opts.verbose then
      say("%s", err.message)
    end
    return opts.conflict_exit_code
  end
  say("%s", err.message)
  if err.errno == ERRNO.EROFS then -- a missing FILE on a read-only filesystem, as flock(1)
    return EXIT.cantcreat
  end
  return SYSTEM_ERRNOS[err.errno] and EXIT.oserr or EXIT.noinput
end

-- ---------------------------------------------------------------- command-line parsing

-- The options of `command` (cli/args.lua), or nil once --help has printed its usage.
local function command_options(command, args, i)
  local opts
  opts, i = args_parser.parse(command, args, i)
  if opts.help then
    io.stdout:write(M.usage(command))
    return nil
  end
  opts.conflict_exit_code = opts.conflict_exit_code or EXIT.conflict
  return opts, i
end

-- The command to run from args[i..]: CMD [ARGS...] after an optional "--", or for lock
-- "-c STRING" (given before FILE or right after it).
local function command_words(command, opts, args, i)
  if command == "lock" and not opts.command and (args[i] == "-c" or args[i] == "--command") then
    opts.command = args[i + 1] and args_parser.text_value("lock: " .. args[i], args[i + 1])
    if not opts.command then
      usage_error("%s: option %s needs a value", command, args[i])
    end
    i = i + 2
  elseif args[i] == "--" then
    i = i + 1
  end
  if opts.command then
    if args[i] ~= nil then
      usage_error("%s: -c STRING takes no further arguments (got '%s')", command, args[i])
    end
    return {"/bin/sh", "-c", opts.command}
  end
  local argv = {}
  for k = i, #args do
    argv[#argv + 1] = args[k]
  end
  if #argv == 0 then
    usage_error("%s: no command to run", command)
  elseif argv[1] == "" then
    usage_error("%s: CMD is empty ('')", command)
  end
  return argv
end

-- ---------------------------------------------------------------- running the command

-- Says why CMD could not start (err from core.command_run or command_exec); returns the
-- exit status for it.
local function command_failure(err)
  say("%s", err.message)
  if err.errno == ERRNO.ENOENT then
    return EXIT.not_found
  end
  -- As in the shell, anything else that keeps an existing CMD from running is 126; only a
  -- system out of processes or memory, or a lost status, is 71.
  return (SYSTEM_ERRNOS[err.errno] or err.errno == ERRNO.ECHILD) and EXIT.oserr
    or EXIT.cannot_execute
end

-- Runs argv inheriting `keep`, then calls release(); returns the command's exit status
-- (flock(1)'s convention). The release also runs when something raises on the way.
local function run_command(argv, keep, release)
  local ok, code, err = pcall(core.command_run, argv, keep)
  release()
  if not ok then
    error(code, 0)
  elseif code then
    return code
  end
  return command_failure(err)
end

-- Runs argv while `holder` (an acquired RedisLock or RedisSemaphore) holds its grant, watching
-- the session's loss descriptor: a grant lost meanwhile ends CMD (SIGTERM, then SIGKILL after
-- core.COMMAND_GRACE seconds) and portalock exits EXIT.lost, as it does when CMD ended by
-- itself but the grant was lost by then. CMD inherits nothing: portalock's connection holds
-- the grant, so portalock stays until CMD ends.
local function run_holding(argv, holder)
  local ok, code, fired = pcall(core.command_run_watching, argv, {}, holder:lost_fd())
  local held, state = holder:check(), tostring(holder) -- "portalock.RedisLock('x'): lost"
  holder:release() -- never raises
  if not ok then
    error(code, 0)
  elseif not code then
    return command_failure(fired)
  elseif fired or not held then
    say("%s while CMD ran%s", state, fired and "; CMD was sent SIGTERM" or "")
    return EXIT.lost
  end
  return code
end

-- Acquires `holder` (a RedisLock or RedisSemaphore) waiting `timeout` seconds, then runs argv
-- holding it; returns the exit status.
local function hold_and_run(command, holder, timeout, argv, opts)
  local started = core.monotonic()
  local ok, got, err = pcall(holder.acquire, holder, timeout, nil, false)
  if not ok then -- refused by the server's own record, such as another maximum for the name
    usage_error("%s: %s", command, tostring(got))
  elseif not got then
    if err.kind == "AlreadyLocked" then
      return acquire_failure(err, opts)
    end
    say("%s", err.message) -- the server cannot be reached, or the session was lost
    return EXIT.oserr
  end
  if opts.verbose then
    say("holding %s (token %s) after %.6f s", (tostring(holder):gsub(": held$", "")),
      holder.token, core.monotonic() - started)
  end
  return run_holding(argv, holder)
end

-- ---------------------------------------------------------------- the commands

-- The declaration of `name` in the config, or nil when there is no config or no such name.
local function declared(registry, name)
  return registry and registry:declaration(name)
end

-- What `lock` locks: the class, file and options for `target`, a declared name (when a
-- config is loaded) or a file. A declaration without a timeout waits forever, as flock(1).
local function lock_plan(target, opts, registry)
  local decl = declared(registry, target)
  if decl and not decl.file then
    usage_error("lock: %s is a %s, not a lock%s", target, decl.kind,
      (decl.kind == "bounded_semaphore" or decl.kind == "redis_semaphore")
        and " (use portalock run --name " .. target .. ")" or "")
  end
  local class, filename, options = "Lock", target, {}
  if decl then
    -- An RLock's reentrancy means nothing to one command: its file is locked as a Lock's.
    class = decl.class == "RLock" and "Lock" or decl.class
    filename, options = decl.argument, decl.options
  end
  if opts.shared and class ~= "Lock" then
    usage_error("lock: -s: %s is a %s, which is always exclusive", target, decl.kind)
  elseif opts.no_fork and class ~= "Lock" then
    usage_error("lock: -F: %s is a %s, whose file portalock removes after CMD, which -F does "
      .. "not wait for", target, decl.kind)
  end
  options.flags = (opts.shared and portalock.LOCK_SH or portalock.LOCK_EX) + portalock.LOCK_NB
  options.fail_when_locked = false
  if class == "Lock" then
    options.mode = options.mode or lock_family.least_mode(options)
  end
  options.timeout = opts.timeout or options.timeout or math.huge
  return class, filename, options
end

-- portalock[class](...), a constructor's refusal being a usage error of `command`.
local function make(command, class, ...)
  local ok, object = pcall(portalock[class], ...)
  if not ok then
    usage_error("%s: %s", command, tostring(object))
  end
  return object
end

-- `lock --redis URL NAME`, or a declared redis_lock NAME: a RedisLock on the channel NAME.
local function redis_lock(target, opts, argv, decl)
  if opts.shared then
    usage_error("lock: -s: a Redis lock is always exclusive")
  elseif opts.no_fork then
    usage_error("lock: -F: portalock's own connection holds a Redis lock, so portalock stays "
      .. "while CMD runs")
  end
  local options = decl and decl.options or {redis = opts.redis}
  local holder = make("lock", "RedisLock", decl and decl.argument or target, options)
  return hold_and_run("lock", holder, opts.timeout or options.timeout or math.huge, argv, opts)
end

function M.lock(args, i, load_registry)
  local opts
  opts, i = command_options("lock", args, i)
  if not opts then
    return 0
  end
  local target = args[i]
  if target == nil then
    usage_error("lock: no FILE given")
  end
  if opts.no_fork and opts.close then
    usage_error("lock: -F (--no-fork) and -o (--close) exclude each other: with -F nothing is "
      .. "left to hold the lock but CMD")
  end
  local argv = command_words("lock", opts, args, i + 1)
  local registry = not opts.redis and load_registry() or nil -- --redis: NAME is a channel
  local decl = declared(registry, target)
  if opts.redis or (decl and decl.kind == "redis_lock") then
    return redis_lock(target, opts, argv, decl)
  end
  local class, filename, options = lock_plan(target, opts, registry)
  local started = core.monotonic()
  local holder = make("lock", class, filename, options)
  local fh, err = holder:acquire()
  if not fh then
    return acquire_failure(err, opts)
  end
  if opts.verbose then
    say("got the lock on %s after %.6f s", holder.filename, core.monotonic() - started)
  end
  if opts.no_fork then
    local _, exec_err = core.command_exec(argv, {fh}) -- returns only when CMD cannot start
    holder:release()
    return command_failure(exec_err)
  end
  return run_command(argv, opts.close and {} or {fh}, function() holder:release() end)
end

-- `run --redis URL --name NAME`, or a declared redis_semaphore NAME: a RedisSemaphore.
local function redis_semaphore(opts, decl)
  if opts.dir then
    usage_error("run: --dir: a Redis semaphore has no slot files")
  elseif not opts.name then
    usage_error("run: --redis needs --name NAME, the semaphore's name on the server")
  end
  local options = decl and decl.options or {redis = opts.redis}
  return make("run", "RedisSemaphore", decl and decl.argument or opts.name,
    opts.jobs or (decl and decl.maximum) or 1, options), opts.timeout or options.timeout or math.huge
end

-- The semaphore for `run` and how long to wait for it: the declared one when --name names one
-- (a bounded_semaphore's timeout is its own), a Redis one with --redis. A declaration
-- without a timeout waits forever, like sem.
local function semaphore_for(opts, registry)
  local decl = opts.name and declared(registry, opts.name)
  if opts.redis or (decl and decl.kind == "redis_semaphore") then
    return redis_semaphore(opts, decl)
  elseif decl and decl.kind ~= "bounded_semaphore" then
    usage_error("run: --name: %s is a %s, not a bounded_semaphore or redis_semaphore", opts.name,
      decl.kind)
  end
  local options = decl and decl.options or {name = opts.name or "bounded_semaphore"}
  options.directory = opts.dir or options.directory
  options.timeout = opts.timeout or options.timeout or math.huge
  return make("run", "NamedBoundedSemaphore", opts.jobs or (decl and decl.argument) or 1, options)
end

function M.run(args, i, load_registry)
  local opts
  opts, i = command_options("run", args, i)
  if not opts then
    return 0
  end
  local argv = command_words("run", opts, args, i)
  local sem, redis_timeout = semaphore_for(opts, not opts.redis and load_registry() or nil)
  if redis_timeout then
    return hold_and_run("run", sem, redis_timeout, argv, opts)
  end
  local slot, err = sem:acquire()
  if not slot then
    return acquire_failure(err, opts)
  end
  if opts.verbose then
    say("running in %s (one of %d slots)", slot.filename, sem.maximum)
  end
  return run_command(argv, {slot:fileno()}, function() sem:release() end)
end

local TYPE_NAMES = {FLOCK = "flock", POSIX = "posix", OFDLCK = "ofd"}

-- "held (exclusive) by PID 1234 [flock]" for the holders of one file.
local function describe_holders(holders)
  local groups, order, waiting = {}, {}, 0
  for _, holder in ipairs(holders) do
    if holder.waiting then
      waiting = waiting + 1
    else
      local key = (holder.exclusive and "exclusive" or "shared") .. " "
        .. (TYPE_NAMES[holder.type] or holder.type:lower())
      if not groups[key] then
        groups[key] = {}
        order[#order + 1] = key
      end
      if holder.pid > 0 then
        table.insert(groups[key], tostring(holder.pid))
      end
    end
  end
  if #order == 0 then
    return nil
  end
  local parts = {}
  for k, key in ipairs(order) do
    local access, type_name = key:match("^(%S+) (%S+)$")
    local pids = groups[key]
    local by = #pids == 0 and "" or (#pids == 1 and " by PID " or " by PIDs ") .. table.concat(pids, " ")
    parts[k] = ("(%s)%s [%s]"):format(access, by, type_name)
  end
  local text = "held " .. table.concat(parts, "; ")
  if waiting > 0 then
    text = text .. (", %d waiting"):format(waiting)
  end
  return text
end

-- Where /proc/locks is missing: one non-blocking attempt tells held from free.
local function probe(path)
  local ok, lock = pcall(portalock.Lock, path, {mode = "r", timeout = 0})
  if not ok then
    return nil, tostring(lock)
  end
  local fh, err = lock:acquire()
  if fh then
    lock:release()
    return "free (who holds locks is known only from /proc/locks, on Linux)"
  elseif err.kind == "AlreadyLocked" then
    return "held (who holds it is known only from /proc/locks, on Linux)", true
  end
  return nil, err.message
end

-- One line for `path`: its text, whether it is held, and the exit status when it fails. A
-- missing file is free when it belongs to a declaration (slot files and temporary locks
-- exist only once used), an error otherwise.
local function file_status(path, is_declared)
  local holders, err = core.lock_holders(path)
  if not holders then
    if err.errno == ERRNO.ENOENT or err.errno == ERRNO.ENOTDIR then
      if is_declared then
        return "free (no file yet)", false
      end
      return nil, false, EXIT.noinput, path .. ": no such file"
    end
    local text, held_or_problem = probe(path)
    if not text then
      return nil, false, EXIT.noinput, held_or_problem
    end
    return text, held_or_problem == true
  end
  local held = describe_holders(holders)
  return held or "free", held ~= nil
end

-- The lock files behind `target`: a declared name's, or {target} itself for a file. A
-- counting semaphore has none: the second result says so, without creating it.
local function status_files(target, registry)
  local decl = declared(registry, target)
  if not decl then
    return {target}, false
  elseif decl.file then
    local object = registry:get(target) -- constructors touch no file
    return {object.lock_filename or object.filename}, true
  elseif decl.kind == "bounded_semaphore" then
    return portalock[decl.class](decl.argument, decl.options):get_filenames(), true
  end
  return nil, ("%s: a counting semaphore (%s), which has no lock file"):format(target,
    decl.options.name)
end

-- "held (2 of 3) by portalock-<session> (token T), ... [redis], 1 waiting" or "free [redis]"
-- for a RedisLock or RedisSemaphore (`object`), as its server counts holders now; whether it is
-- held; or nil, false, the exit status and why when the server cannot be asked.
local function redis_status(object)
  local st, err = object:status()
  if not st then
    return nil, false, EXIT.oserr, err.message
  end
  local holders = {}
  for i, holder in ipairs(st.holders) do
    holders[i] = ("portalock-%s (token %s)"):format(holder.session, holder.token)
  end
  if st.foreign > 0 then -- their channel's subscribers: no more is known of them
    holders[#holders + 1] = st.foreign == 1 and "a Python portalocker process"
      or ("%d Python portalocker processes"):format(st.foreign)
  end
  local text = "free"
  if #holders > 0 then
    local of = (st.maximum or 1) > 1
      and (" (%d of %d)"):format(#st.holders + st.foreign, st.maximum) or ""
    text = ("held%s by %s"):format(of, table.concat(holders, ", "))
  end
  text = text .. " [redis]" .. (st.waiting > 0 and (", %d waiting"):format(st.waiting) or "")
  return text, #holders > 0
end

-- The RedisLock or RedisSemaphore that `status` asks about for `target`: with --redis the
-- name on that server, else a declared redis_lock or redis_semaphore; nil for anything else.
local function status_redis_object(target, opts, registry)
  if opts.redis then
    return make("status", "RedisLock", target, {redis = opts.redis})
  end
  local decl = declared(registry, target)
  return decl and decl.redis and registry:get(target) or nil
end

function M.status(args, i, load_registry)
  local opts
  opts, i = command_options("status", args, i)
  if not opts then
    return 0
  end
  if args[i] == nil then
    usage_error("status: no FILE or NAME given")
  end
  local registry = not opts.redis and load_registry() or nil -- --redis: NAME is on that server
  local any_held, failed = false, nil
  local function report(label, text, held, code, message)
    if text then
      io.stdout:write(label, ": ", text, "\n")
      any_held = any_held or held
    else
      say("%s", message)
      failed = failed or code
    end
  end
  for k = i, #args do
    local redis_object = status_redis_object(args[k], opts, registry)
    if redis_object then
      report(args[k], redis_status(redis_object))
    else
      local files, is_declared = status_files(args[k], registry)
      if not files then
        io.stdout:write(is_declared, "\n")
      end
      for _, path in ipairs(files or {}) do
        report(path, file_status(path, is_declared))
      end
    end
  end
  return failed or (any_held and EXIT.conflict or 0)
end

local function exists(path)
  local f, _, errno = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return errno ~= ERRNO.ENOENT and errno ~= ERRNO.ENOTDIR
end

function M.write(args, i)
  local opts
  opts, i = command_options("write", args, i)
  if not opts then
    return 0
  end
  local filename = args[i]
  if filename == nil then
    usage_error("write: no FILE given")
  elseif args[i + 1] ~= nil then
    usage_error("write: one FILE only (got '%s' after it)", args[i + 1])
  end
  -- Checked first so that a plain refusal reads no input and leaves no temporary behind;
  -- a FILE that appears while writing is still refused by the commit.
  if opts.no_replace and exists(filename) then
    say("%s exists (--no-replace)", filename)
    return EXIT.cantcreat
  end
  local made, h, err = pcall(portalock.open_atomic, filename, {replace = not opts.no_replace})
  if not made then -- FILE is no file name: empty, too long, a directory ("." or "dir/")
    usage_error("write: FILE: %s", tostring(h))
  elseif not h then
    say("%s", err.message)
    return EXIT.cantcreat
  end
  while true do
    local chunk, read_problem = io.stdin:read(65536)
    if not chunk then
      if read_problem then
        h:abort()
        say("reading standard input: %s", read_problem)
        return EXIT.ioerr
      end
      break
    end
    local ok, write_err = h:write(chunk)
    if not ok then
      h:abort()
      say("%s", write_err.message)
      return EXIT.ioerr
    end
  end
  local ok, commit_err = h:commit()
  if not ok then
    say("%s", commit_err.message)
    return commit_err.errno == ERRNO.EEXIST and EXIT.cantcreat or EXIT.ioerr
  end
  return 0
end

-- ---------------------------------------------------------------- main

-- A function that loads the config when a command first needs it: --config's file, else
-- $PORTALOCK_CONFIG's, else none (nil).
local function config_loader(path)
  return function()
    path = path or os.getenv("PORTALOCK_CONFIG")
    if path == nil or path == "" then
      return nil
    end
    local registry, err = portalock.config.load(path)
    if not registry then
      if err.errno then -- the file could not be read: the message says why
        fail(EXIT.noinput, "config: %s", err.message)
      end
      fail(EXIT.config, "%s", err.message)
    end
    return registry
  end
end

local function dispatch(args)
  local opts, i = args_parser.parse("global", args, 1)
  if opts.help then
    io.stdout:write(M.usage())
    return 0
  elseif opts.version then
    io.stdout:write("portalock ", portalock._VERSION, "\n")
    return 0
  end
  local command = args[i]
  if command == nil then
    usage_error("no command given: lock, run, status or write")
  elseif command == "help" then
    io.stdout:write(M.usage(usage.is_command(args[i + 1]) and args[i + 1] or nil))
    return 0
  elseif not usage.is_command(command) then
    usage_error("unknown command '%s' (lock, run, status or write)", command)
  end
  return M[command](args, i + 1, config_loader(opts.config))
end

--- Runs the command line `args` (an array of strings, like the interpreter's `arg`);
--- returns the exit status.
function M.main(args)
  -- The stand-alone interpreter turns SIGINT into a Lua error ("interrupted!"); the tool
  -- dies of it instead, as flock(1) does, so that its caller sees 128+2.
  core.default_sigint()
  local ok, result = pcall(dispatch, args)
  if ok then
    return result
  elseif failure.is_failure(result) then
    say("%s", result.message)
    return result.code
  end
  say("internal error: %s", tostring(result))
  return EXIT.software
end

return M
