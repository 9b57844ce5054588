--- Owners of holds: the running coroutine (the main thread included) or a key chosen by
-- `opts.owner`, mapped to integer tokens for the C layer; inside an nginx request, the request
-- with the running coroutine (see portalock.nginx: lua-nginx-module reuses coroutines from
-- request to request, so a coroutine alone does not name a request).
-- Keys are held weakly: a key that is collected, a coroutine that is dead or a request that
-- has ended no longer owns anything. Tokens come from a counter and are never reused, so a
-- new owner can never inherit the holds of a dead one.
local nginx = require "portalock.nginx"

local M = {}

-- Lua 5.1 and LuaJIT answer nil for the main thread: it gets this stand-in.
local MAIN_THREAD = setmetatable({}, {__tostring = function() return "main thread" end})

local token_of = setmetatable({}, {__mode = "k"})
local key_of = setmetatable({}, {__mode = "v"})
-- token -> the nginx request it belongs to (a request's record lives as long as its ngx.ctx).
local request_of = setmetatable({}, {__mode = "v"})
local last_token = 0

local function new_token(key)
  last_token = last_token + 1
  key_of[last_token] = key
  return last_token
end

--- The token for `key`, made on first use.
function M.token(key)
  local token = token_of[key]
  if not token then
    token = new_token(key)
    token_of[key] = token
  end
  return token
end

--- The token of the running coroutine (of the main thread's stand-in), within the running
--- nginx request if there is one.
function M.current_token()
  local co = coroutine.running() or MAIN_THREAD
  local request = nginx.current_request()
  if not request then
    return token_of[co] or M.token(co)
  end
  local token = request.tokens[co]
  if not token then
    token = new_token(co)
    request.tokens[co] = token
    request_of[token] = request
  end
  return token
end

--- The nginx request `token` belongs to, or nil.
function M.request(token)
  return request_of[token]
end

--- False once the key behind `token` is collected or, for a coroutine, dead, or its nginx
--- request has ended.
function M.alive(token)
  local key = key_of[token]
  if key == nil then
    return false
  elseif type(key) == "thread" and nginx.coroutine_status(key) == "dead" then
    return false
  end
  local request = request_of[token]
  return request == nil or nginx.request_alive(request)
end

return M
