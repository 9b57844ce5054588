--- The usage texts of the portalock command (portalock --help, portalock COMMAND --help).
local core = require "portalock.core"
local EXIT = require("portalock.cli.failure").EXIT

local M = {}

local USAGE = {}
USAGE.lock = [=[
portalock lock [-s|-x] [-n] [-w SECONDS] [-E CODE] [-o|-F] [-v] FILE|NAME [--] CMD [ARGS...]
portalock lock [OPTIONS] FILE|NAME -c STRING
portalock lock --redis URL [-n] [-w SECONDS] [-E CODE] [-v] NAME [--] CMD [ARGS...]
    Run CMD holding a lock on FILE (opened read-only, created when missing), as flock(1)
    does. CMD inherits the locked descriptor, so the lock lasts as long as CMD, even if
    portalock is killed.
    -s, --shared             take a shared lock
    -x, -e, --exclusive      take an exclusive lock (the default)
    -n, --nonblocking, --nonblock, --nb
                             fail at once if the lock is held (wins over -w)
    -w, --wait, --timeout SECONDS
                             give up after SECONDS (decimals allowed); default: wait forever
    -E, --conflict-exit-code CODE
                             exit with CODE (0..255) on conflict or timeout; default 1
    -o, --close              do not hand the lock to CMD: portalock holds it until CMD ends
    -F, --no-fork            become CMD (exec, no fork): CMD holds the lock alone
    -c, --command STRING     run STRING with /bin/sh -c
    -v, --verbose            say on stderr when the lock is taken, or why not
    --redis URL              lock the RedisLock on the channel NAME on the Redis server at URL:
                             redis://[[user]:password@]host[:port][/db] or
                             unix://[[user]:password@]/path, with an optional
                             ?db=N&username=U&password=P (a password alone is :password@)
    A conflict is silent without -v, as with flock(1). CMD is started as execvp(3) would: a
    file without a "#!" line runs with /bin/sh.
    A Redis lock (--redis, or a declared redis_lock NAME) is held by portalock's connection,
    not by CMD: portalock stays until CMD ends. When the lock is lost meanwhile (the server
    dropped the connection, the lease ran out unrenewed), CMD gets SIGTERM (SIGKILL ]=]
  .. ("%g"):format(core.COMMAND_GRACE) .. [=[ s
    later) and portalock exits ]=] .. EXIT.lost .. [=[. -s and -F do not apply; -o changes nothing.
]=]
USAGE.run = [[
portalock run [-j N] [--name NAME] [--dir DIR] [-n] [-w SECONDS] [-E CODE] [-v] [--] CMD [ARGS...]
portalock run --redis URL [-j N] --name NAME [-n] [-w SECONDS] [-E CODE] [-v] [--] CMD [ARGS...]
    Run CMD holding one of N slots of a crash-safe bounded semaphore (what GNU parallel's
    `sem` does). The slot files are DIR/NAME.00.lock, DIR/NAME.01.lock, ..., the names
    Python's portalocker.BoundedSemaphore uses, so Python and shell workers share the slots.
    CMD inherits the slot's descriptor, as with lock.
    -j, --jobs N             at most N commands at once (1..]] .. core.BOUNDED_MAXIMUM .. [[); default 1
    --name NAME              the semaphore's name; default bounded_semaphore
    --dir DIR                where the slot files live; default the temporary directory
                             ($TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp)
    --redis URL              hold one of N permits of the RedisSemaphore NAME on the Redis
                             server at URL instead (every user of NAME gives the same N);
                             held and lost as a Redis lock is (see lock)
    -n, -w, -E, -v           as for lock
]]
USAGE.status = [[
portalock status FILE|NAME...
portalock status --redis URL NAME...
    Print whether each lock is held, and by which processes:
      FILE: free
      FILE: held (exclusive) by PID 1234 [flock]
    PIDs come from /proc/locks (Linux); elsewhere only "held" or "free" is known. The PID
    is the process that took the lock: a command that inherited it is not listed. A
    configured bounded semaphore lists every slot file (a declared file not made yet is
    free). A declared redis_lock or redis_semaphore, or with --redis the lock or semaphore
    NAME on the server at URL, is asked of its server, as a waiter would count its holders:
      NAME: held by portalock-1f2e3d4c5b6a7980 (token 1796622999744594) [redis], 2 waiting
      NAME: held (2 of 3) by portalock-... (token ...), a Python portalocker process [redis]
    naming each holder's session as the server's CLIENT LIST does (portalock-SESSION-command).
    Exit 0 when everything is free, 1 when anything is held, 66 when a FILE does not exist,
    71 when a Redis server cannot be asked.
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
                     before any file of that name: lock NAME takes a declared lock's file
                     or redis_lock, run --name NAME a declared bounded semaphore or
                     redis_semaphore (its maximum is the default -j), status NAME shows a
                     file's. A declared timeout is the default wait; without one, as without
                     a config, portalock waits as long as it takes. --redis ignores the
                     config: NAME is then the channel or semaphore on that server.
    -h, --help       this text; portalock COMMAND --help shows one command
    -V, --version    print the version
A long option may be abbreviated to any prefix that names only it (--time 5, --conf F).

Exit status:
    0        success; status: everything is free
    1        conflict or timeout (or the -E code); status: something is held
    64       usage error (an unknown or ambiguous option, a bad value, an empty CMD, ...)
    66       cannot open the lock file; status: FILE does not exist
    ]] .. EXIT.software .. [[       internal error: a bug, or this Lua interpreter cannot load portalock's
             modules (the message names the interpreter and the module)
    71       another system failure (locking, starting CMD, reaching Redis)
    73       lock, run: cannot create the lock file (read-only filesystem); write: cannot
             create the temporary file, or FILE exists (--no-replace)
    74       write: an I/O error (FILE is left as it was)
    ]] .. EXIT.lost .. [[       lock, run with Redis: the lock or permit was lost while CMD ran (CMD got
             SIGTERM)
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

--- Whether `name` is a command.
function M.is_command(name)
  return USAGE[name] ~= nil
end

return M
