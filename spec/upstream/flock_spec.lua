-- util-linux's own tests of flock(1), re-expressed against `portalock lock`: the flock(2)
-- subtests of tests/ts/flock/flock and the --wait 0 case of tests/ts/flock/unlock (expected
-- outputs in tests/expected/flock/), and the EXAMPLES of the flock(1) manual page. Each
-- command line is upstream's with `portalock lock` in place of flock, run by bash with
-- upstream's variable names. Where upstream needs what portalock deliberately does not take
-- (descriptor numbers, --fd, --fcntl, -u, directories), the case checks the refusal that the
-- README's "Differences from flock(1)" describes.
local core = require "portalock.core"
local helper = require "spec.support.helper"
local cli = require "spec.support.cli"

local quote = helper.quote

-- $TS_CMD_FLOCK: `portalock lock` as one word-split command, as upstream's variable is.
local TS_CMD_FLOCK = helper.lua .. " " .. cli.bin .. " lock"

local function contains(text, fragment)
  return text:find(fragment, 1, true) ~= nil
end

-- Runs `script` with bash in `outdir` with TS_CMD_FLOCK, TS_OUTDIR, TS_OUTPUT and TS_ERRLOG
-- set (the last two fresh files); returns the exit status, TS_OUTPUT's and TS_ERRLOG's text.
local function ts_run(outdir, script)
  local output, errlog = outdir .. "/output", outdir .. "/errlog"
  helper.write(output, "")
  helper.write(errlog, "")
  local code = helper.run("cd " .. quote(outdir) .. " && env TS_CMD_FLOCK=" .. quote(TS_CMD_FLOCK)
    .. " TS_OUTDIR=" .. quote(outdir) .. " TS_OUTPUT=" .. quote(output) .. " TS_ERRLOG=" .. quote(errlog)
    .. " timeout -k 5 60 bash -c " .. quote(script))
  return code, helper.read(output), helper.read(errlog)
end

-- Upstream's do_lock: `$TS_CMD_FLOCK $opts $TS_OUTDIR/lockfile echo "$mesg"`, output and errors
-- appended to TS_OUTPUT and TS_ERRLOG.
local function do_lock(outdir, opts, mesg)
  return ts_run(outdir, "$TS_CMD_FLOCK " .. opts .. ' $TS_OUTDIR/lockfile echo ' .. quote(mesg)
    .. ' >> "$TS_OUTPUT" 2>> "$TS_ERRLOG"')
end

local function check(expected_rc, code, output, errlog)
  assert.are.equal(expected_rc, code, cli.describe(code, output, errlog))
end

describe("util-linux tests/ts/flock/flock, flock(2) subtests", function()
  -- The subtests run in order against one general lock, as upstream's do: a shared lock held
  -- for 3 s from `start`; the timeout subtest waits for its end and sets `finish`.
  local outdir, s, gen_output, start, finish

  lazy_setup(function()
    outdir = helper.tmpdir()
    s = cli.session(outdir)
    gen_output = outdir .. "/general"
    start = core.monotonic()
    local pid = s:spawn_shell("env TS_CMD_FLOCK=" .. quote(TS_CMD_FLOCK) .. " bash -c "
      .. quote("exec $TS_CMD_FLOCK --shared " .. quote(outdir .. "/lockfile")
        .. [[ bash -c "echo 'API: flock(2)'; echo 'Locking'; sleep 3; echo 'Unlocking'"]]), gen_output)
    -- Upstream: "the lock should be established when flock has a child" (its 1 s bound is a
    -- readiness wait for the harness, given more room here for loaded CI machines).
    assert(helper.wait_until(function()
      return helper.run(helper.peer_env .. "pgrep -P " .. pid .. " > /dev/null") == 0
    end, 10), "timeout waiting for the general lock's child: " .. tostring(helper.read(gen_output)))
  end)

  lazy_teardown(function()
    s:cleanup()
    helper.rmtree(outdir)
  end)

  -- {subtest, do_lock's options, expected exit status, message, expected output}
  local subtests = {
    {"non-block", "--nonblocking --conflict-exit-code 123", 123, "You will never see this!", ""},
    {"no-fork", "--no-fork --nonblocking --conflict-exit-code 123", 123, "You will never see this!", ""},
    {"shared", "--shared", 0, "Have shared lock", "Have shared lock\n"},
    -- "the same as non-block test (exclusive lock is the default), but here we explicitly
    -- specify --exclusive on command line"
    {"exclusive", "--nb --exclusive --conflict-exit-code 123", 123, "You will never see this!", ""},
  }
  for _, case in ipairs(subtests) do
    local name, opts, expected_rc, mesg, expected_output = case[1], case[2], case[3], case[4], case[5]
    it(("%s: %s exits %d"):format(name, opts, expected_rc), function()
      local code, output, errlog = do_lock(outdir, opts, mesg)
      check(expected_rc, code, output, errlog)
      assert.are.equal(expected_output, output)
      assert.are.equal("", errlog)
    end)
  end

  it("fd: a descriptor number is not taken (a difference), and no file '4' is made", function()
    local code, output, errlog = ts_run(outdir, 'exec 4<>"$TS_OUTDIR/lockfile"; '
      .. '$TS_CMD_FLOCK --nonblocking --exclusive --conflict-exit-code 123 4 >> "$TS_OUTPUT" 2>> "$TS_ERRLOG"')
    check(64, code, output, errlog)
    assert.is_true(contains(errlog, "no command"), errlog)
    assert.is_false(helper.exists(outdir .. "/4"), "fd file should not exist")
  end)

  it("fcntl-*: --fcntl is refused, naming it (a difference)", function()
    local code, output, errlog = do_lock(outdir, "--fcntl --nonblocking --conflict-exit-code 123",
      "You will never see this!")
    check(64, code, output, errlog)
    assert.is_true(contains(errlog, "--fcntl"), errlog)
  end)

  it("timeout: --timeout 5 --conflict-exit-code 5 waits for the general lock, then runs", function()
    local code, output, errlog = do_lock(outdir, "--timeout 5 --conflict-exit-code 5", "After timeout.")
    finish = core.monotonic()
    check(0, code, output, errlog)
    assert.are.equal("After timeout.\n", output)
    assert.are.equal("", errlog)
  end)

  it("time-check: the timeout subtest ended 3 to 5 whole seconds after the general lock began", function()
    assert(finish, "the timeout subtest did not run")
    -- Upstream compares `date +%s` stamps: 3 <= diff <= 5 in whole seconds, under 6 s measured.
    local elapsed = finish - start
    assert.is_true(elapsed >= 3 and elapsed < 6, ("%.2f s"):format(elapsed))
    assert.is_true(helper.wait_until(function()
      return helper.read(gen_output) == "API: flock(2)\nLocking\nUnlocking\n"
    end, 10), "general lock output: " .. tostring(helper.read(gen_output)))
  end)
end)

describe("util-linux tests/ts/flock/unlock", function()
  local outdir

  before_each(function()
    outdir = helper.tmpdir()
  end)

  after_each(function()
    helper.rmtree(outdir)
  end)

  it("--wait 0 is --nonblock: it takes a free lock; --verbose reports on stderr (a difference)", function()
    local code, output, errlog = ts_run(outdir, '$TS_CMD_FLOCK --exclusive --wait 0 --verbose "$TS_OUTDIR/lock" true '
      .. '>> "$TS_OUTPUT" 2>> "$TS_ERRLOG"')
    check(0, code, output, errlog)
    assert.are.equal("", output) -- flock(1) prints "getting lock took ... seconds" here
    assert.is_true(errlog:match("^portalock: got the lock on .- after [%d.]+ s\n$") ~= nil, errlog)
  end)

  it("--wait 0 on a held lock fails at once, as --nonblock", function()
    local code, output, errlog = ts_run(outdir, '$TS_CMD_FLOCK --exclusive "$TS_OUTDIR/lock" '
      .. '$TS_CMD_FLOCK --exclusive --wait 0 --conflict-exit-code 7 "$TS_OUTDIR/lock" true')
    check(7, code, output, errlog)
  end)

  it("--unlock of a descriptor is refused, naming it (a difference)", function()
    local code, output, errlog = ts_run(outdir,
      'exec 10<>"$TS_OUTDIR/lock"; $TS_CMD_FLOCK --unlock 10 2>> "$TS_ERRLOG"')
    check(64, code, output, errlog)
    assert.is_true(contains(errlog, "--unlock"), errlog)
  end)
end)

describe("flock(1) EXAMPLES with portalock lock in place of flock", function()
  local dir, s

  before_each(function()
    dir = helper.tmpdir()
    s = cli.session(dir)
  end)

  after_each(function()
    helper.write(dir .. "/release", "")
    s:cleanup()
    helper.rmtree(dir)
  end)

  -- `portalock` on PATH, as a shell user has it, and `bash -c SCRIPT` run with it in `dir`.
  local function shell(script)
    local bin = dir .. "/bin"
    if not helper.exists(bin) then
      assert.are.equal(0, helper.run("mkdir " .. quote(bin)))
      helper.write(bin .. "/portalock", "#!/bin/sh\nexec " .. quote(helper.lua) .. " " .. quote(cli.bin) .. ' "$@"\n')
      assert.are.equal(0, helper.run("chmod 755 " .. quote(bin .. "/portalock")))
    end
    local out, code = helper.capture("cd " .. quote(dir) .. " && env PATH=" .. quote(bin .. ":" .. os.getenv("PATH"))
      .. " timeout -k 5 60 bash -c " .. quote(script))
    return code, out
  end

  -- shell1> flock FILE -c cat, held until `release` exists: cat reads from a FIFO.
  local function shell1(options, path)
    local fifo = dir .. "/stdin." .. tostring(#s.groups)
    assert.are.equal(0, helper.run("mkfifo " .. quote(fifo)))
    s:spawn_shell("sh -c " .. quote("exec " .. TS_CMD_FLOCK .. " " .. options .. " " .. quote(path)
      .. " -c cat < " .. quote(fifo)))
    s:spawn_shell("sh -c " .. quote("exec 3> " .. quote(fifo) .. "; while [ ! -e release ]; do sleep 0.05; done"))
    -- held, shared or exclusive, once an exclusive attempt fails
    assert.is_true(helper.wait_until(function() return cli.flock_try(path) ~= 0 end, 10), "shell1 never locked")
  end

  -- shell2> portalock lock OPTIONS -w .007 FILE -c echo; /bin/echo $?  Returns the output.
  local function shell2(options, path)
    local code, out = shell("portalock lock " .. options .. " -w .007 " .. quote(path) .. " -c echo; /bin/echo $?")
    assert.are.equal(0, code, out)
    return out
  end

  it("shell1> lock FILE -c cat; shell2> lock -w .007 FILE -c echo: the second fails (1)", function()
    shell1("", dir .. "/f")
    assert.are.equal("1\n", shell2("", dir .. "/f"))
  end)

  it("shell1> lock -s FILE -c cat; shell2> lock -s -w .007 FILE -c echo: the second runs", function()
    shell1("-s", dir .. "/f")
    assert.are.equal("\n0\n", shell2("-s", dir .. "/f"))
    -- "attempting to get exclusive lock with second command would fail"
    assert.are.equal("1\n", shell2("", dir .. "/f"))
  end)

  it("a directory, as in `flock /tmp -c cat`, is not a lock file here (a difference): 66", function()
    local code, out = shell("portalock lock -w .007 " .. quote(dir) .. " -c echo 2>&1; /bin/echo $?")
    assert.are.equal(0, code, out)
    assert.is_true(out:match("66\n$") ~= nil and contains(out, dir), out)
  end)

  it("shell> lock -x local-lock-file echo 'a b c'", function()
    local code, out = shell("portalock lock -x local-lock-file echo 'a b c'")
    assert.are.equal(0, code, out)
    assert.are.equal("a b c\n", out)
    assert.is_true(helper.exists(dir .. "/local-lock-file"))
  end)

  it("(; flock -n 9 || exit 1; ...) 9>FILE: no descriptor numbers (a difference), 64", function()
    local code, out = shell("( portalock lock -n 9 || exit 1; echo 'under lock' ) 9>mylockfile 2>&1; /bin/echo $?")
    assert.are.equal(0, code, out)
    assert.is_true(out:match("no command.-\n1\n$") ~= nil, out)
    assert.is_false(helper.exists(dir .. "/9"))
  end)

  it('[ "${FLOCKER}" != "$0" ] && exec env FLOCKER="$0" portalock lock -en "$0" "$0" "$@" || :', function()
    -- The script locks itself (it is opened read-only: no ETXTBSY) and runs once at a time.
    local script = dir .. "/self-locking"
    helper.write(script, "#!/bin/sh\n"
      .. '[ "${FLOCKER}" != "$0" ] && exec env FLOCKER="$0" portalock lock -en "$0" "$0" "$@" || :\n'
      .. 'echo "running $*"\n'
      .. "[ \"$1\" = first ] || exit 0\necho $$ > first.pid\n"
      .. "while [ ! -e release ]; do sleep 0.05; done\n")
    assert.are.equal(0, helper.run("chmod 755 " .. quote(script)))
    s:track_pid_file(dir .. "/first.pid")
    shell("true") -- makes bin/portalock
    s:spawn_shell("env PATH=" .. quote(dir .. "/bin:" .. os.getenv("PATH")) .. " " .. quote(script) .. " first")
    assert(cli.read_pid(dir .. "/first.pid", 15), "the first run never got the lock")
    local code, out = shell(quote(script) .. " second")
    assert.are.equal(1, code, out) -- -n: the first run holds the lock
    assert.are.equal("", out)
    helper.write(dir .. "/release", "")
    assert.is_true(helper.wait_until(function() return cli.flock_try(script) == 0 end, 15))
    code, out = shell(quote(script) .. " third")
    assert.are.equal(0, code, out)
    assert.are.equal("running third\n", out)
  end)

  it("exec 4<>FILE; flock -n 4: no descriptor numbers (a difference), 64", function()
    local code, out = shell("exec 4<>mylockfile; portalock lock -n 4 2>&1; /bin/echo $?")
    assert.are.equal(0, code, out)
    assert.is_true(out:match("no command.-\n64\n$") ~= nil, out)
  end)

  it("exec 10<>FILE; flock -n --fd 10 echo '1 2 3': --fd is refused (a difference), 64", function()
    local code, out = shell("exec 10<>mylockfile; portalock lock -n --fd 10 echo '1 2 3' 2>&1; /bin/echo $?")
    assert.are.equal(0, code, out)
    assert.is_true(out:match("%-%-fd.-\n64\n$") ~= nil, out)
  end)
end)
