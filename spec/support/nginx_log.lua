--- nginx's error.log read as entries, for the specs' "no warnings or errors" checks.
-- An entry is one "YYYY/MM/DD HH:MM:SS [level] PID#TID: message" line together with the
-- lines that follow it without a date of their own (a Lua traceback, for instance).
local nginx_log = {}

-- nginx's levels, mildest first (ngx_log.c's err_levels, less "stderr").
local LEVELS = {"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}
local RANK = {}
for rank, level in ipairs(LEVELS) do
  RANK[level] = rank
end

--- The entries of error.log `text`: a list of {level = "warn", pid = 123, text = "..."}
--- (text is the whole entry, its continuation lines included).
function nginx_log.entries(text)
  local entries = {}
  for line in text:gmatch("[^\n]+") do
    local level, pid = line:match("^%d+/%d+/%d+ %d+:%d+:%d+ %[(%a+)%] (%d+)#")
    if level then
      entries[#entries + 1] = {level = level, pid = tonumber(pid), text = line}
    elseif #entries > 0 then
      local last = entries[#entries]
      last.text = last.text .. "\n" .. line
    else -- text before the first dated line (nginx writes none): kept, and counted as an error
      entries[1] = {level = "error", text = line}
    end
  end
  return entries
end

local function expected(entry, patterns)
  for _, pattern in ipairs(patterns) do
    if entry.text:find(pattern) then
      return true
    end
  end
  return false
end

--- The texts of the entries of `text` at [warn] or worse that match none of the Lua
--- patterns in `patterns` (a list; nil for none), in the order of the log.
function nginx_log.problems(text, patterns)
  local found = {}
  for _, entry in ipairs(nginx_log.entries(text)) do
    local rank = RANK[entry.level]
    if (rank == nil or rank >= RANK.warn) and not expected(entry, patterns or {}) then
      found[#found + 1] = entry.text
    end
  end
  return found
end

return nginx_log
