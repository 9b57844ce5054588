-- examples/openresty/nginx.conf, the README's complete configuration, run as written: only
-- what ties it to a machine (the module paths, the workers' user, the pid file, the package
-- paths, the lock directory and the port) is replaced by the harness's.
local helper = require "spec.support.helper"
local nginx = require "spec.support.nginx"

local EXAMPLE = nginx.root .. "/examples/openresty/nginx.conf"

-- Replaces `pattern` in `text` exactly once (else the example changed: fail loudly).
local function replace_once(text, pattern, replacement)
  local result, count = text:gsub(pattern, function() return replacement end)
  assert(count == 1, "examples/openresty/nginx.conf: expected one match of " .. pattern .. ", found " .. count)
  return result
end

local function adapted(parts)
  local text = assert(helper.read(EXAMPLE))
  text = replace_once(text, "\nload_module.-\nevents {[^}]*}\n", "\n" .. parts.main .. "\n")
  text = replace_once(text, "\n    access_log off;\n", "\n")
  text = replace_once(text, "\n    lua_package_path [^\n]*\n", "\n")
  text = replace_once(text, "\n    lua_package_cpath [^\n]*\n", "\n")
  text = replace_once(text, "\nhttp {\n", "\nhttp {\n" .. parts.http .. "\n")
  text = replace_once(text, 'LOCK_DIR = "/var/lib/portalock%-example"', string.format("LOCK_DIR = %q", parts.lock_dir))
  return replace_once(text, "listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. parts.port .. ";")
end

describe("examples/openresty/nginx.conf", function()
  local missing = nginx.missing()
  if missing then
    pending("skipped: " .. missing)
    return
  end

  local server

  setup(function()
    server = nginx.start({config = adapted, ready_path = "/render"})
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  it("/migrate: one migration at a time, the other request gets 409 at once", function()
    local first = server:request_async("/migrate")
    helper.sleep(0.5)
    local second = assert(server:request("/migrate"))
    assert.are.equal(409, second.status)
    assert.matches("^a migration is running: .*is locked", second.body)
    local response = assert(first(10))
    assert.are.equal(200, response.status)
    assert.are.equal("migrated\n", response.body)
  end)

  it("/render: every request renders, in one of two slots", function()
    local pending_responses = {}
    for i = 1, 8 do
      pending_responses[i] = server:request_async("/render")
    end
    for _, wait in ipairs(pending_responses) do
      local response = assert(wait(10))
      assert.are.equal(200, response.status)
      assert.matches("^rendered in slot [01]\n$", response.body)
    end
    assert.are.same({}, server:log_problems({}))
  end)
end)
