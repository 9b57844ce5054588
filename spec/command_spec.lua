-- core.command_run_watching, the binding of portalock_command_run_watching that the command
-- line runs a Redis grant's CMD with: the command ends (SIGTERM) once the watched descriptor
-- becomes readable. The watched descriptor here is a pipe from io.popen, readable once its
-- shell command prints.
local core = require "portalock.core"

describe("core.command_run_watching", function()
  local pipes = {}

  -- A pipe that becomes readable after `delay` seconds.
  local function readable_after(delay)
    local pipe = assert(io.popen(("sleep %g; echo lost"):format(delay)))
    pipes[#pipes + 1] = pipe
    return pipe
  end

  after_each(function()
    for _, pipe in ipairs(pipes) do
      pipe:close()
    end
    pipes = {}
  end)

  it("ends the command with SIGTERM once the watched handle is readable", function()
    local started = core.monotonic()
    local code, fired = core.command_run_watching({"sleep", "30"}, {}, readable_after(0.3))
    local elapsed = core.monotonic() - started
    assert.are.equal(128 + 15, code)
    assert.is_true(fired)
    assert.is_true(elapsed >= 0.25 and elapsed < 5, tostring(elapsed))
  end)

  it("sends SIGKILL when the command outlives the grace", function()
    local code, fired = core.command_run_watching({"sh", "-c", "trap '' TERM; exec sleep 30"}, {},
      readable_after(0.2), 0.3)
    assert.are.equal(128 + 9, code)
    assert.is_true(fired)
  end)

  it("returns the command's own status when it ends first", function()
    local code, fired = core.command_run_watching({"sh", "-c", "exit 4"}, {}, readable_after(1))
    assert.are.equal(4, code)
    assert.is_false(fired)
  end)

  it("has the grace of the C library as COMMAND_GRACE", function()
    assert.are.equal(10, core.COMMAND_GRACE)
  end)

  it("refuses a bad grace or watch, naming it", function()
    local ok, err = pcall(core.command_run_watching, {"true"}, {}, io.stdout, -1)
    assert.is_false(ok)
    assert.matches("bad command_run_watching: `grace` (-1): must be >= 0", err, 1, true)
    ok, err = pcall(core.command_run_watching, {"true"}, {}, 999)
    assert.is_false(ok)
    assert.matches("`watch_fd` (999) is not an open descriptor", err, 1, true)
    ok, err = pcall(core.command_run_watching, {"true"}, {}, "x")
    assert.is_false(ok)
    assert.matches("bad argument #3", err, 1, true)
  end)

  it("says why a command cannot start, as command_run does", function()
    local code, err = core.command_run_watching({"portalock-spec-no-such-command"}, {}, io.stdout)
    assert.is_nil(code)
    assert.are.equal("LockException", err.kind)
    assert.matches("portalock-spec-no-such-command", err.message, 1, true)
  end)
end)
