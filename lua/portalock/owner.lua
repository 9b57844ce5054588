--- Owners of holds: the running coroutine (the main thread included) or a key chosen by
-- `opts.owner`, mapped to integer tokens for the C layer.
-- Keys are held weakly: a key that is collected, or a coroutine that is dead, no longer
-- owns anything. Tokens come from a counter and are never reused, so a new coroutine can
-- never inherit the holds of a dead one.
local M = {}

-- Lua 5.1 and LuaJIT answer nil for the main thread: it gets this stand-in.
local MAIN_THREAD = setmetatable({}, {__tostring = function() return "main thread" end})

local token_of = setmetatable({}, {__mode = "k"})
local key_of = setmetatable({}, {__mode = "v"})
local last_token = 0

--- The token for `key`, made on first use.
function M.token(key)
  local token = token_of[key]
  if not token then
    last_token = last_token + 1
    token = last_token
    token_of[key] = token
    key_of[token] = key
  end
  return token
end

--- The token of the running coroutine, or of the main thread's stand-in.
function M.current_token()
  local key = coroutine.running() or MAIN_THREAD
  return token_of[key] or M.token(key)
end

--- False once the key behind `token` is collected or, for a coroutine, dead.
function M.alive(token)
  local key = key_of[token]
  if key == nil then
    return false
  elseif type(key) == "thread" then
    return coroutine.status(key) ~= "dead"
  end
  return true
end

return M
