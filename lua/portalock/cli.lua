--- The `portalock` command: lock, run, status and write from the shell. bin/portalock calls
--- main(arg) and exits with the status it returns. Options and exit codes follow util-linux
--- flock(1) where the two overlap; the usage text below is the reference.
local core = require "portalock.core"
local portalock = require "portalock"

local M = {}

-- Exit statuses: flock(1)'s and sysexits.h's, then the shell's for a command that cannot run.
local EXIT = {
  conflict = 1, usage = 64, noinput = 66, software = 70, oserr = 71, cantcreat = 73, ioerr = 74,
  config = 78, cannot_execute = 126, not_found = 127,
}

local ERRNO = core.ERRNO

local USAGE = {}
USAGE.lock = [[
portalock lock [-s|-x] [-n] [-w SECONDS] [-E CODE] [-o] [-v] FILE|NAME [--] CMD [ARGS...]
portalock lock [OPTIONS] FILE|NAME -c STRING
    Run CMD holding a lock on FILE (created when missing), as flock(1) does. CMD inherits
    the locked descriptor, so the lock lasts as long as CMD, even if portalock is killed.
    -s, --shared             take a shared lock
    -x, -e, --exclusive      take an exclusive lock (the default)
    -n, --nonblock, --nb     fail at once if the lock is held (wins over -w)
    -w, --wait, --timeout SECONDS
                             give up after SECONDS (decimals allowed); default: wait forever
    -E, --conflict-exit-code CODE
                             exit with CODE (0..255) on conflict or timeout; default 1
    -o, --close              do not hand the lock to CMD: portalock holds it until CMD ends
    -c, --command STRING     run STRING with /bin/sh -c
    -v, --verbose            say on stderr when the lock is taken, or why not
    A conflict is silent without -v, as with flock(1). CMD is started as execvp(3) would: a
    file without a "#!" line runs with /bin/sh.
]]
USAGE.run = [[
portalock run [-j N] [--name NAME] [--dir DIR] [-n] [-w SECONDS] [-E CODE] [-v] [--] CMD [ARGS...]
    Run CMD holding one of N slots of a crash-safe bounded semaphore (what GNU parallel's
    `sem` does). The slot files are DIR/NAME.00.lock, DIR/NAME.01.lock, ..., the names
    Python's portalocker.BoundedSemaphore uses, so Python and shell workers share the slots.
    CMD inherits the slot's descriptor, as with lock.
    -j, --jobs N             at most N commands at once (1..10000); default 1
    --name NAME              the semaphore's name; default bounded_semaphore
    --dir DIR                where the slot files live; default the temporary directory
                             ($TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp)
    -n, -w, -E, -v           as for lock
]]
USAGE.status = [[
portalock status FILE|NAME...
    Print whether each lock is held, and by which processes:
      FILE: free
      FILE: held (exclusive) by PID 1234 [flock]
    PIDs come from /proc/locks (Linux); elsewhere only "held" or "free" is known. The PID
    is the process that took the lock: a command that inherited it is not listed. A
    configured bounded semaphore lists every slot file (a declared file not made yet is
    free). Exit 0 when everything is free, 1 when anything is held, 66 when a FILE does not
    exist.
]]
USAGE.write = [[
portalock write [--no-replace] FILE
    Replace FILE atomically with standard input: readers see the old content or the whole
    new content, never a mix; on failure FILE is left as it was.
    --no-replace             fail (exit 73) if FILE exists
]]
local GLOBAL = [[
usage: portalock [--config FILE] COMMAND [OPTIONS] [ARGS...]

Commands:
%s
Global options:
    --config FILE    load a portalock config (README "Configuration"; default
                     $PORTALOCK_CONFIG when set). A NAME then refers to a declared resource,
                     before any file of that name: lock NAME takes a declared lock's file,
                     run --name NAME a declared bounded semaphore (its maximum is the default
                     -j), status NAME shows either. A declared timeout is the default wait;
                     without one, as without a config, portalock waits as long as it takes.
    -h, --help       this text; portalock COMMAND --help shows one command
    -V, --version    print the version

Exit status:
    0        success; status: everything is free
    1        conflict or timeout (or the -E code); status: something is held
    64       usage error
    66       cannot open the lock file; status: FILE does not exist
    71       another system failure (locking, starting CMD)
    73       write: cannot create the temporary file, or FILE exists (--no-replace)
    74       write: an I/O error (FILE is left as it was)
    78       the config file is malformed
    126/127  CMD cannot be executed / was not found
    N        CMD's exit status; 128+N when CMD died of signal N
Messages go to stderr. SIGINT, SIGTERM and SIGHUP sent to portalock while CMD runs are
forwarded to CMD (a terminal's Ctrl-C reaches CMD directly; a signal sent to the whole
process group reaches CMD twice). While portalock waits for a lock, SIGINT ends it (130).
]]

local COMMANDS = {"lock", "run", "status", "write"}

function M.usage(command)
  if command then
    return "usage: " .. USAGE[command]
  end
  local parts = {}
  for i, name in ipairs(COMMANDS) do
    parts[i] = USAGE[name]
  end
  return GLOBAL:format(table.concat(parts, "\n"))
end

-- ---------------------------------------------------------------- failures

-- A failure that ends the command with `code`; main() prints the message.
local Failure = {}

local function fail(code, fmt, ...)
  error(setmetatable({code = code, message = fmt:format(...)}, Failure), 0)
end

local function usage_error(fmt, ...)
  fail(EXIT.usage, fmt .. " (portalock --help)", ...)
end

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
  return SYSTEM_ERRNOS[err.errno] and EXIT.oserr or EXIT.noinput
end

-- ---------------------------------------------------------------- command-line parsing

local function number_value(option, value)
  local n = tonumber(value)
  if not n or n ~= n or n < 0 or n == math.huge then
    usage_error("%s: '%s' is not a number of seconds >= 0", option, value)
  end
  return n
end

local function integer_value(low, high)
  return function(option, value)
    local n = tonumber(value)
    if not n or n % 1 ~= 0 or n < low or n > high then
      usage_error("%s: '%s' is not an integer from %d to %d", option, value, low, high)
    end
    return n
  end
end

local function text_value(option, value)
  if value == "" then
    usage_error("%s: the value is empty", option)
  end
  return value
end

-- Option tables: the spellings of each option, the key it sets, and how its value is
-- read (nil for a switch, which sets `set` or true).
local TIMING = {
  {names = {"-n", "--nonblock", "--nb"}, key = "nonblock"},
  {names = {"-w", "--wait", "--timeout"}, key = "timeout", value = number_value},
  {names = {"-E", "--conflict-exit-code"}, key = "conflict_exit_code", value = integer_value(0, 255)},
  {names = {"-v", "--verbose"}, key = "verbose"},
  {names = {"-h", "--help"}, key = "help"},
}

local function with_timing(options)
  for _, option in ipairs(TIMING) do
    options[#options + 1] = option
  end
  return options
end

local OPTIONS = {
  lock = with_timing {
    {names = {"-s", "--shared"}, key = "shared", set = true},
    {names = {"-x", "-e", "--exclusive"}, key = "shared", set = false},
    {names = {"-o", "--close"}, key = "close"},
    {names = {"-c", "--command"}, key = "command", value = text_value},
  },
  run = with_timing {
    {names = {"-j", "--jobs"}, key = "jobs", value = integer_value(1, 10000)},
    {names = {"--name"}, key = "name", value = text_value},
    {names = {"--dir"}, key = "dir", value = text_value},
  },
  status = {{names = {"-h", "--help"}, key = "help"}},
  write = {
    {names = {"--no-replace"}, key = "no_replace"},
    {names = {"-h", "--help"}, key = "help"},
  },
}

local function find_option(command, name)
  for _, option in ipairs(OPTIONS[command]) do
    for _, spelling in ipairs(option.names) do
      if spelling == name then
        return option
      end
    end
  end
  usage_error("%s: unknown option %s", command, name)
end

-- Parses the options of `command` from args[i]; returns them and the index of the first
-- operand. Parsing stops at "--" or at the first operand, as flock(1)'s does, so that
-- options after FILE belong to CMD. Short options combine (-sn) and take values attached
-- or separate (-w5, -w 5); long ones take --wait=5 or --wait 5.
local function parse_options(command, args, i)
  local opts = {}
  local function set(option, spelling, attached)
    if not option.value then
      if attached then
        usage_error("%s: option %s takes no value", command, spelling)
      end
      local value = option.set
      if value == nil then
        value = true
      end
      opts[option.key] = value
      return
    end
    local value = attached
    if value == nil then
      i = i + 1
      value = args[i]
      if value == nil then
        usage_error("%s: option %s needs a value", command, spelling)
      end
    end
    opts[option.key] = option.value(command .. ": " .. spelling, value)
  end
  local function finish(first_operand)
    if opts.nonblock then -- as in flock(1), -n wins over -w
      opts.timeout = 0
    end
    return opts, first_operand
  end
  while args[i] ~= nil do
    local word = args[i]
    if word == "--" then
      return finish(i + 1)
    elseif word:sub(1, 2) == "--" then
      local name, attached = word:match("^(%-%-[^=]+)=(.*)$")
      name = name or word
      set(find_option(command, name), name, attached)
    elseif word:sub(1, 1) == "-" and #word > 1 then
      local k = 2
      while k <= #word do
        local spelling = "-" .. word:sub(k, k)
        local option = find_option(command, spelling)
        if option.value then
          local rest = word:sub(k + 1)
          set(option, spelling, rest ~= "" and rest or nil)
          break
        end
        set(option, spelling)
        k = k + 1
      end
    else
      return finish(i)
    end
    i = i + 1
  end
  return finish(i)
end

-- The options of `command` (parse_options), or nil once --help has printed its usage.
local function command_options(command, args, i)
  local opts
  opts, i = parse_options(command, args, i)
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
    opts.command = args[i + 1] and text_value("lock: " .. args[i], args[i + 1])
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
  end
  return argv
end

-- ---------------------------------------------------------------- running the command

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
  say("%s", err.message)
  if err.errno == ERRNO.ENOENT then
    return EXIT.not_found
  end
  -- As in the shell, anything else that keeps an existing CMD from running is 126; only a
  -- system out of processes or memory, or a lost status, is 71.
  return (SYSTEM_ERRNOS[err.errno] or err.errno == ERRNO.ECHILD) and EXIT.oserr
    or EXIT.cannot_execute
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
      decl.kind == "bounded_semaphore" and " (use portalock run --name " .. target .. ")" or "")
  end
  local class, filename, options = "Lock", target, {}
  if decl then
    -- An RLock's reentrancy means nothing to one command: its file is locked as a Lock's.
    class = decl.class == "RLock" and "Lock" or decl.class
    filename, options = decl.argument, decl.options
  end
  if opts.shared and class ~= "Lock" then
    usage_error("lock: -s: %s is a %s, which is always exclusive", target, decl.kind)
  end
  options.flags = (opts.shared and portalock.LOCK_SH or portalock.LOCK_EX) + portalock.LOCK_NB
  options.fail_when_locked = false
  if class == "Lock" then
    options.mode = options.mode or "a"
  end
  options.timeout = opts.timeout or options.timeout or math.huge
  return class, filename, options
end

local function make(class, filename, options)
  local ok, object = pcall(portalock[class], filename, options)
  if not ok then
    usage_error("lock: %s", tostring(object))
  end
  return object
end

-- Acquires the lock of the plan; returns the io handle (or nil, err) and the lock object.
-- A file this user may not write is locked through a read-only descriptor, as flock(1) does.
local function acquire_lock(class, filename, options)
  local object = make(class, filename, options)
  local fh, err = object:acquire()
  if not fh and class == "Lock" and (err.errno == ERRNO.EACCES or err.errno == ERRNO.EROFS) then
    options.mode = "r"
    local readonly = make(class, filename, options)
    local retry_fh, retry_err = readonly:acquire()
    if retry_fh or retry_err.kind == "AlreadyLocked" then
      return retry_fh, retry_err, readonly
    end
  end
  return fh, err, object
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
  local argv = command_words("lock", opts, args, i + 1)
  local class, filename, options = lock_plan(target, opts, load_registry())
  local started = core.monotonic()
  local fh, err, holder = acquire_lock(class, filename, options)
  if not fh then
    return acquire_failure(err, opts)
  end
  if opts.verbose then
    say("got the lock on %s after %.6f s", holder.filename, core.monotonic() - started)
  end
  return run_command(argv, opts.close and {} or {fh}, function() holder:release() end)
end

-- The bounded semaphore for `run`: the declared one when --name names one. A declaration
-- without a timeout waits forever, like sem.
local function semaphore_for(opts, registry)
  local decl = opts.name and declared(registry, opts.name)
  if decl and decl.kind ~= "bounded_semaphore" then
    usage_error("run: --name: %s is a %s, not a bounded_semaphore", opts.name, decl.kind)
  end
  local options = decl and decl.options or {name = opts.name or "bounded_semaphore"}
  options.directory = opts.dir or options.directory
  options.timeout = opts.timeout or options.timeout or math.huge
  local maximum = opts.jobs or (decl and decl.argument) or 1
  local ok, sem = pcall(portalock.NamedBoundedSemaphore, maximum, options)
  if not ok then
    usage_error("run: %s", tostring(sem))
  end
  return sem
end

function M.run(args, i, load_registry)
  local opts
  opts, i = command_options("run", args, i)
  if not opts then
    return 0
  end
  local argv = command_words("run", opts, args, i)
  local sem = semaphore_for(opts, load_registry())
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

function M.status(args, i, load_registry)
  local opts
  opts, i = command_options("status", args, i)
  if not opts then
    return 0
  end
  if args[i] == nil then
    usage_error("status: no FILE or NAME given")
  end
  local registry = load_registry()
  local any_held, failure = false, nil
  for k = i, #args do
    local files, is_declared = status_files(args[k], registry)
    if not files then
      io.stdout:write(is_declared, "\n")
    end
    for _, path in ipairs(files or {}) do
      local text, held, code, message = file_status(path, is_declared)
      if text then
        io.stdout:write(path, ": ", text, "\n")
        any_held = any_held or held
      else
        say("%s", message)
        failure = failure or code
      end
    end
  end
  return failure or (any_held and EXIT.conflict or 0)
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
  local h, err = portalock.open_atomic(filename, {replace = not opts.no_replace})
  if not h then
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
  local i, config_path = 1, nil
  while args[i] ~= nil and args[i]:sub(1, 1) == "-" do
    local word = args[i]
    if word == "-h" or word == "--help" then
      io.stdout:write(M.usage())
      return 0
    elseif word == "-V" or word == "--version" then
      io.stdout:write("portalock ", portalock._VERSION, "\n")
      return 0
    elseif word == "--config" or word:match("^%-%-config=") then
      config_path = word == "--config" and args[i + 1] or word:sub(#"--config=" + 1)
      if config_path == nil or config_path == "" then
        usage_error("--config needs a FILE")
      end
      i = i + (word == "--config" and 1 or 0)
    else
      usage_error("unknown option %s", word)
    end
    i = i + 1
  end
  local command = args[i]
  if command == nil then
    usage_error("no command given: lock, run, status or write")
  elseif command == "help" then
    io.stdout:write(M.usage(USAGE[args[i + 1]] and args[i + 1] or nil))
    return 0
  elseif not USAGE[command] then
    usage_error("unknown command '%s' (lock, run, status or write)", command)
  end
  return M[command](args, i + 1, config_loader(config_path))
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
  elseif getmetatable(result) == Failure then
    say("%s", result.message)
    return result.code
  end
  say("internal error: %s", tostring(result))
  return EXIT.software
end

return M
