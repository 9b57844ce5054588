--- How the portalock command ends when something is wrong: its exit statuses and the
--- failure that carries one up to cli.main, which prints the message.
local M = {}

-- Exit statuses: flock(1)'s and sysexits.h's, then the shell's for a command that cannot run.
-- `lost` (EX_TEMPFAIL, which flock(1) never uses): a Redis grant was lost while CMD ran.
M.EXIT = {
  conflict = 1, usage = 64, noinput = 66, software = 70, oserr = 71, cantcreat = 73, ioerr = 74,
  lost = 75, config = 78, cannot_execute = 126, not_found = 127,
}

local Failure = {}

--- Ends the command with `code` and the message fmt:format(...).
function M.fail(code, fmt, ...)
  error(setmetatable({code = code, message = fmt:format(...)}, Failure), 0)
end

--- Ends the command with a usage error (64); the message points at --help.
function M.usage_error(fmt, ...)
  M.fail(M.EXIT.usage, fmt .. " (portalock --help)", ...)
end

--- Whether `value` (an error caught by pcall) is a failure raised by fail().
function M.is_failure(value)
  return getmetatable(value) == Failure
end

return M
