--- Command-line parsing for the portalock command: the options of each command and how they
--- are read, by getopt_long(3)'s rules as flock(1) uses them (see parse).
local core = require "portalock.core"
local failure = require "portalock.cli.failure"

local usage_error = failure.usage_error

local M = {}

-- ---------------------------------------------------------------- option values

-- A reader for a number under the core's `rule` (core.rule_problem), whose words the message
-- keeps: the command line refuses what the API and the config refuse.
local function rule_value(rule, what)
  return function(option, value)
    local n = tonumber(value)
    if not n then
      usage_error("%s: '%s' is not %s", option, value, what)
    end
    local problem = core.rule_problem(rule, n)
    if problem then
      usage_error("%s: '%s' %s", option, value, problem)
    end
    return n
  end
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

--- Reads a value that must not be empty; `option` names it in the error.
function M.text_value(option, value)
  if value == "" then
    usage_error("%s: the value is empty", option)
  end
  return value
end
local text_value = M.text_value

-- A Redis URL, as the core reads it; the core's message names the value (a password masked).
-- Without Redis support there is no reader: the constructor then says why.
local function redis_url_value(option, value)
  local parse = core.redis_parse_url
  local problem = parse and select(2, parse(value))
  if problem then
    local detail = problem:match("^bad argument 'url' (.*)$")
    usage_error("%s%s", option, detail and " " .. detail or ": " .. problem)
  end
  return value
end

-- ---------------------------------------------------------------- option tables

-- Each option: its spellings, the key it sets and how its value is read (nil for a switch,
-- which sets `set`, or true). An option with `refused` is one of flock(1)'s that portalock
-- does not take: it is recognised (and abbreviated) only to say why.
local HELP = {names = {"-h", "--help"}, key = "help"}

local TIMING = {
  {names = {"-n", "--nonblocking", "--nonblock", "--nb"}, key = "nonblock"},
  {names = {"-w", "--wait", "--timeout"}, key = "timeout", value = rule_value("timeout", "a number of seconds")},
  {names = {"-E", "--conflict-exit-code"}, key = "conflict_exit_code", value = integer_value(0, 255)},
  {names = {"-v", "--verbose"}, key = "verbose"},
  HELP,
}

local function with_timing(options)
  for _, option in ipairs(TIMING) do
    options[#options + 1] = option
  end
  return options
end

local NO_DESCRIPTORS = "portalock locks a FILE it opens, not a descriptor number"

local OPTIONS = {
  -- Before the command: `portalock --config FILE lock ...`.
  global = {
    {names = {"--config"}, key = "config", value = text_value},
    {names = {"-V", "--version"}, key = "version"},
    HELP,
  },
  lock = with_timing {
    {names = {"--redis"}, key = "redis", value = redis_url_value},
    {names = {"-s", "--shared"}, key = "shared", set = true},
    {names = {"-x", "-e", "--exclusive"}, key = "shared", set = false},
    {names = {"-o", "--close"}, key = "close"},
    {names = {"-F", "--no-fork"}, key = "no_fork"},
    {names = {"-c", "--command"}, key = "command", value = text_value},
    {names = {"-u", "--unlock"}, refused = NO_DESCRIPTORS .. "; its lock ends when CMD ends"},
    {names = {"--fd"}, refused = NO_DESCRIPTORS},
    {names = {"--fcntl"}, refused = 'fcntl locks are declared in a config (backend = "ofd")'},
    {names = {"--start"}, refused = "portalock locks whole files"},
    {names = {"--length"}, refused = "portalock locks whole files"},
  },
  run = with_timing {
    {names = {"-j", "--jobs"}, key = "jobs", value = rule_value("bounded_maximum", "a number")},
    {names = {"--name"}, key = "name", value = text_value},
    {names = {"--dir"}, key = "dir", value = text_value},
    {names = {"--redis"}, key = "redis", value = redis_url_value},
  },
  status = {
    {names = {"--redis"}, key = "redis", value = redis_url_value},
    HELP,
  },
  write = {
    {names = {"--no-replace"}, key = "no_replace"},
    HELP,
  },
}

-- "lock: " before a message about an option of lock; nothing for the global options.
local function prefix(command)
  return command == "global" and "" or command .. ": "
end

-- The option `name` (a short "-x" or a long "--xyz") of `command`, and its full spelling. A
-- long name may be abbreviated as getopt_long(3) allows: an exact spelling wins, else the one
-- option that some spelling starts with; a prefix of several options is ambiguous.
local function find_option(command, name)
  local candidates, shown = {}, {}
  for _, option in ipairs(OPTIONS[command]) do
    for _, spelling in ipairs(option.names) do
      if spelling == name then
        return option, name
      elseif name:sub(1, 2) == "--" and #name > 2 and spelling:sub(1, #name) == name
          and candidates[#candidates] ~= option then
        candidates[#candidates + 1] = option
        shown[#shown + 1] = "'" .. spelling .. "'"
      end
    end
  end
  if #candidates == 1 then
    return candidates[1], shown[1]:sub(2, -2)
  elseif #candidates > 1 then
    usage_error("%soption '%s' is ambiguous; possibilities: %s", prefix(command), name,
      table.concat(shown, " "))
  end
  usage_error("%sunknown option %s", prefix(command), name)
end

-- ---------------------------------------------------------------- parsing

--- Parses the options of `command` ("global" for those before the command) from args[i];
--- returns them (keyed by option key) and the index of the first operand. Parsing stops at
--- "--" or at the first operand, as flock(1)'s does, so that options after FILE belong to
--- CMD. Short options combine (-sn) and take values attached or separate (-w5, -w 5); long
--- ones take --wait=5 or --wait 5 and may be abbreviated (--time 5).
function M.parse(command, args, i)
  local opts = {}
  local function set(option, spelling, attached)
    if option.refused then
      usage_error("%s%s is not supported: %s", prefix(command), spelling, option.refused)
    elseif not option.value then
      if attached then
        usage_error("%soption %s takes no value", prefix(command), spelling)
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
        usage_error("%soption %s needs a value", prefix(command), spelling)
      end
    end
    opts[option.key] = option.value(prefix(command) .. spelling, value)
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
      local option, spelling = find_option(command, name)
      set(option, spelling, attached)
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

return M
