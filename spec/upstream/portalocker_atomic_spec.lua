-- Ported from portalocker 4.1's portalocker_tests/test_open_atomic.py. portalocker's
-- open_atomic never replaces an existing file; portalock's does unless `replace = false`, so
-- these run with `replace = false` (the default is a difference, listed in the README). The
-- Python `with` block publishes on a clean exit; here that is h:commit(). Monkeypatched
-- publication calls are real system calls, traced or failed in a child by strace(1).
local portalock = require "portalock"
local helper = require "spec.support.helper"
local upstream = require "spec.support.upstream"

local PUBLICATION = "rename,renameat,renameat2,link,linkat"

describe("portalocker's tests: test_open_atomic", function()
  local dir, target

  before_each(function()
    dir = helper.tmpdir()
    target = dir .. "/destination.bin"
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  local function entries()
    local names = {}
    local pipe = assert(io.popen("ls -A " .. helper.quote(dir)))
    for name in pipe:lines() do
      names[#names + 1] = name
    end
    pipe:close()
    return names
  end

  local function needs_strace()
    assert.is_true(upstream.have_strace(), "strace(1) cannot trace here (no ptrace?)")
  end

  it("test_open_atomic_publishes_without_leaving_temporary_file", function()
    local h = assert(portalock.open_atomic(target, {replace = false}))
    assert.are.equal(h, h:write("published payload"))
    assert.is_true(h:commit())
    assert.are.equal("published payload", helper.read(target))
    assert.are.same({"destination.bin"}, entries())
  end)

  it("test_open_atomic_uses_platform_publication_primitive: one publication that cannot replace", function()
    needs_strace()
    local log = dir .. "/strace.log"
    local out, code = helper.capture(upstream.strace(helper.lua_command([[
      local h = assert(require("portalock").open_atomic(..., {replace = false}))
      h:write("published payload")
      assert(h:commit())
    ]], target), PUBLICATION, log))
    assert.are.equal(0, code, out)
    local calls = upstream.trace_lines(log)
    os.remove(log)
    assert.are.equal(1, #calls, table.concat(calls, "\n"))
    local call = calls[1]
    assert.is_truthy(call:find("RENAME_NOREPLACE", 1, true) or call:match("%slinkat?%("), call)
    assert.are.equal("published payload", helper.read(target))
    assert.are.same({"destination.bin"}, entries())
  end)

  it("test_open_atomic_cleans_temporary_file_after_publication_error", function()
    needs_strace()
    local out, code = helper.capture(upstream.strace(helper.lua_command([[
      local target, replace = ...
      local h = assert(require("portalock").open_atomic(target, {replace = replace == "true"}))
      h:write("unpublished payload")
      local ok, err = h:commit()
      print(ok, err.kind, err.kept ~= nil)
    ]], target, "true"), PUBLICATION, nil, PUBLICATION .. ":error=EIO"))
    assert.are.equal(0, code, out)
    assert.are.equal("nil\tLockException\tfalse\n", out)
    assert.is_false(helper.exists(target))
    assert.are.same({}, entries())
    -- Difference: with replace = false a failed publication keeps the payload and names it
    -- (err.kept), as portalocker 4.2 does; 4.1 deletes it.
    out, code = helper.capture(upstream.strace(helper.lua_command([[
      local target, replace = ...
      local h = assert(require("portalock").open_atomic(target, {replace = replace == "true"}))
      h:write("unpublished payload")
      local ok, err = h:commit()
      print(ok, err.kind, err.kept)
    ]], target, "false"), PUBLICATION, nil, PUBLICATION .. ":error=EIO"))
    assert.are.equal(0, code, out)
    local kept = out:match("^nil\tLockException\t(%S+)\n$")
    assert.is_truthy(kept, out)
    assert.are.equal("unpublished payload", helper.read(kept))
    assert.is_false(helper.exists(target))
  end)

  -- Difference: portalocker 4.1 refuses an existing destination when the block is entered
  -- (an assert, so also under python -O); portalock refuses it at commit.
  it("test_open_atomic_existing_destination_check_survives_optimization", function()
    helper.write(target, "existing destination")
    local h = assert(portalock.open_atomic(target, {replace = false}))
    local ok, err = h:commit()
    assert.is_nil(ok)
    assert.matches("'" .. target .. "' exists", err.message, 1, true)
    assert.are.equal("existing destination", helper.read(target))
  end)

  -- Difference: the losing payload is kept and named (err.kept), as portalocker 4.2 does;
  -- 4.1 deletes it.
  it("test_open_atomic_preserves_destination_created_before_publication", function()
    local h = assert(portalock.open_atomic(target, {replace = false}))
    h:write("temporary payload")
    helper.write(target, "concurrent winner")
    local ok, err = h:commit()
    assert.is_nil(ok)
    assert.matches("exists", err.message)
    assert.are.equal("concurrent winner", helper.read(target))
    assert.are.equal("temporary payload", helper.read(err.kept))
    os.remove(err.kept)
    assert.are.same({"destination.bin"}, entries())
  end)
end)
