local core = require "portalock.core"
local helper = require "spec.support.helper"

-- portalock.core on its own, below the public API's checks: option tables whose string
-- values are numbers, or come from an __index metamethod, must never leave C holding a
-- string the collector has freed (ASan in CI reports it when they do, see
-- support/option_strings.lua), and a number where a string is required is an error naming
-- the option.
describe("portalock.core option tables", function()
  local dir

  setup(function()
    dir = helper.tmpdir()
  end)

  teardown(function()
    helper.rmtree(dir)
  end)

  it("refuses numbers as string options and keeps made-up strings alive", function()
    local output, code = helper.capture(helper.script_command("option_strings", dir))
    assert.are.equal(0, code, output)
    local lines = {}
    for line in output:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    local expected = {"'mode' (number)", "'mode' (number)", "'name' (number)",
      "'filename_pattern' (number)", "'directory' (number)"}
    for i, option in ipairs(expected) do
      assert.is_truthy(lines[i] and lines[i]:find("bad option " .. option .. ": must be a string", 1, true),
        "line " .. i .. ": " .. output)
    end
    assert.are.equal("fresh ok", lines[#expected + 1], output)
  end)

  it("lists a bounded semaphore's slots in a random order", function()
    local sem = assert(core.new_bounded(5, {name = "order", directory = dir}))
    local seen = {}
    for _, path in ipairs(assert(sem:filenames(true))) do
      seen[path] = true
    end
    for _, path in ipairs(assert(sem:filenames())) do
      assert.is_true(seen[path], path)
    end
  end)

  -- C owns the defaults; the Lua objects read the exported values instead of re-typing them.
  it("exports the contract's defaults, and the Lua objects start from them", function()
    local portalock = require "portalock"
    assert.are.equal(5, core.DEFAULT_TIMEOUT)
    assert.are.equal(0.25, core.DEFAULT_CHECK_INTERVAL)
    local objects = {portalock.Lock(dir .. "/defaults.lock"), portalock.RLock(dir .. "/defaults.lock"),
      portalock.BoundedSemaphore(2, {directory = dir})}
    for i, object in ipairs(objects) do
      assert.are.equal(core.DEFAULT_TIMEOUT, object.timeout, "object " .. i)
      assert.are.equal(core.DEFAULT_CHECK_INTERVAL, object.check_interval, "object " .. i)
    end
  end)

  it("exports the permission limits the Lua checks use, and the Lua checks accept exactly those", function()
    local portalock = require "portalock"
    assert.are.equal(tonumber("777", 8), core.PERM_MAX)
    assert.are.equal(tonumber("777", 8), core.SEMAPHORE_PERM_MAX)
    assert.is_truthy(portalock.Lock(dir .. "/perm.lock", {perm = core.PERM_MAX}))
    local ok, message = pcall(portalock.Lock, dir .. "/perm.lock", {perm = core.PERM_MAX + 1})
    assert.is_false(ok)
    assert.is_truthy(message:find("in 0..0o777 ", 1, true), message)
    ok, message = pcall(portalock.Semaphore, 1, {name = "x", perm = core.SEMAPHORE_PERM_MAX + 1})
    assert.is_false(ok)
    assert.is_truthy(message:find("in 0..0o777 ", 1, true), message)
  end)
end)
