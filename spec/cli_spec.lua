-- The command line tool bin/portalock, run as real processes: every option and exit status
-- of `portalock --help`. Peers: util-linux flock(1) and, when PORTALOCK_TEST_PYTHON is set,
-- Python's portalocker. Times are bounded widely: never a tight timing assertion.
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"
local cli = require "spec.support.cli"

local quote = helper.quote
local unpack = table.unpack or unpack -- luacheck: compat

local function check(expected, code, stdout, stderr)
  assert.are.equal(expected, code, cli.describe(code, stdout, stderr))
end

-- Every line of `stderr` starts "portalock: " (and there is at least one).
local function assert_messages(stderr)
  assert.is_true(stderr ~= "", "nothing on stderr")
  for line in stderr:gmatch("[^\n]+") do
    assert.are.equal("portalock: ", line:sub(1, 11), "stderr: " .. stderr)
  end
end

local function contains(text, fragment)
  return text:find(fragment, 1, true) ~= nil
end

local function append(list, ...)
  local copy = {}
  for i = 1, #list do
    copy[i] = list[i]
  end
  for i = 1, select("#", ...) do
    copy[#copy + 1] = (select(i, ...))
  end
  return copy
end

describe("the portalock command", function()
  local dir, s, file, go

  before_each(function()
    dir = helper.tmpdir()
    s = cli.session(dir)
    file = dir .. "/x.lock"
    go = dir .. "/go"
  end)

  after_each(function()
    helper.write(go, "")
    helper.write(dir .. "/release", "")
    s:cleanup()
    helper.rmtree(dir)
  end)

  -- A sh script that writes its PID to `ready`, then waits (at most ~20 s) until `go` exists.
  local function waiter(ready)
    return "echo $$ > " .. quote(ready) .. "; i=0; while [ ! -e " .. quote(go)
      .. " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done"
  end

  -- Starts portalock ARGS... sh -c WAITER in the background (args end with "--"); returns the
  -- process and the command's PID once the command runs (so portalock holds what it took).
  local function hold_with(args, opts)
    local ready = s:file("ready")
    s:track_pid_file(ready)
    local p = s:spawn(append(args, "sh", "-c", waiter(ready)), opts)
    local pid = cli.read_pid(ready, 15)
    assert(pid, "the command never started: " .. cli.describe(p:done() and p:wait(0) or "running",
      p:stdout(), p:stderr()))
    return p, pid
  end

  -- Writes `text` to NAME in the test directory with the given chmod mode; returns its path.
  local function script_file(name, text, mode)
    local path = dir .. "/" .. name
    helper.write(path, text)
    assert.are.equal(0, helper.run("chmod " .. mode .. " " .. quote(path)))
    return path
  end

  local function gone(pid)
    return helper.wait_until(function() return not helper.alive(pid) end, 5)
  end

  describe("--help and --version", function()
    for _, flag in ipairs({"--help", "-h"}) do
      it(flag .. " prints the usage of every command on stdout and exits 0", function()
        local code, out, err = s:run({flag})
        check(0, code, out, err)
        for _, command in ipairs({"lock", "run", "status", "write"}) do
          assert.is_true(contains(out, "portalock " .. command), command .. " missing from:\n" .. out)
        end
      end)
    end

    for _, command in ipairs({"lock", "run", "status", "write"}) do
      it("portalock " .. command .. " --help prints that command's usage and exits 0", function()
        local code, out, err = s:run({command, "--help"})
        check(0, code, out, err)
        assert.is_true(contains(out, "portalock " .. command), out)
      end)
    end

    it("documents --redis for lock and run, and the exit status of a lost Redis grant", function()
      local code, out, err = s:run({"--help"})
      check(0, code, out, err)
      assert.is_true(contains(out, "portalock lock --redis URL"), out)
      assert.is_true(contains(out, "portalock run --redis URL"), out)
      assert.is_true(contains(out, "\n    75       lock, run with Redis: the lock or permit was lost"), out)
      assert.is_true(contains(out, ("CMD gets SIGTERM (SIGKILL %g s"):format(core.COMMAND_GRACE)), out)
    end)

    -- flock(1) exits 1 only for a conflict: an interpreter that cannot load portalock (such as
    -- `env lua` finding another Lua than portalock.core's) must not look like one to a script.
    it("exits 70 (internal error) naming the interpreter and the module when it cannot load "
      .. "portalock.core", function()
      local code, out, err = s:run({"--version"}, {env = {LUA_CPATH = dir .. "/nothing/?.so"}})
      check(70, code, out, err)
      assert.are.equal("", out)
      assert.is_true(contains(err, "portalock: internal error: "), err)
      assert.is_true(contains(err, "(" .. _VERSION .. ") cannot load the module 'portalock.core'"), err)
      assert.is_true(contains(err, "LUA_CPATH"), err)
      code, out, err = s:run({"--help"})
      check(0, code, out, err)
      assert.is_true(contains(out, "\n    70       internal error: a bug, or this Lua interpreter "
        .. "cannot load portalock's"), out)
    end)

    -- A LuaRocks wrapper runs `lua -e 'package.path=...' bin/portalock`: the message names the
    -- interpreter, not the code after -e, and says how to put a tree on the paths.
    it("names the interpreter behind -e code and how to use a LuaRocks tree when it cannot load "
      .. "portalock", function()
      local output, code = helper.capture(string.format("LUA_PATH=%s %s -e %s %s --version",
        quote(dir .. "/nothing/?.lua"), helper.lua, quote("package.path = package.path"), quote(cli.bin)))
      assert.are.equal(70, code, output)
      assert.is_true(contains(output, "portalock: internal error: " .. helper.lua .. " ("
        .. _VERSION .. ") cannot load the module 'portalock.cli'"), output)
      assert.is_true(contains(output, 'eval "$(luarocks --lua-version=' .. _VERSION:match("%d+%.%d+")
        .. ' --tree DIR path)" first'), output)
    end)

    for _, flag in ipairs({"--version", "-V"}) do
      it(flag .. ' prints "portalock <version>"', function()
        local code, out, err = s:run({flag})
        check(0, code, out, err)
        assert.are.equal("portalock " .. portalock._VERSION .. "\n", out)
      end)
    end
  end)

  describe("lock", function()
    describe("runs CMD and exits with its status", function()
      it("0, with the lock file created and nothing on stderr", function()
        local code, out, err = s:run({"lock", file, "--", "true"})
        check(0, code, out, err)
        assert.are.equal("", out)
        assert.are.equal("", err)
        assert.is_true(helper.exists(file))
      end)

      it("3, with or without --", function()
        check(3, s:run({"lock", file, "--", "sh", "-c", "exit 3"}))
        -- option parsing stops at CMD: this -c belongs to sh
        check(3, s:run({"lock", file, "sh", "-c", "exit 3"}))
        check(3, s:run({"lock", "-n", file, "sh", "-c", "exit 3"}))
      end)

      it("128+N when CMD dies of signal N", function()
        check(143, s:run({"lock", file, "--", "sh", "-c", "kill -TERM $$"}))
        check(137, s:run({"lock", file, "--", "sh", "-c", "kill -KILL $$"}))
      end)

      it("127 when CMD does not exist, and lets the lock go", function()
        local code, out, err = s:run({"lock", file, "--", dir .. "/no-such-command"})
        check(127, code, out, err)
        assert_messages(err)
        assert.is_true(contains(err, "no-such-command"), err)
        code, out, err = s:run({"lock", file, "--", "portalock-spec-no-such-command"})
        check(127, code, out, err)
        assert.is_true(contains(err, "portalock-spec-no-such-command"), err)
        assert.are.equal(0, cli.flock_try(file))
      end)

      it("126 when CMD exists but cannot be executed", function()
        local script = script_file("not-executable", "#!/bin/sh\necho ran\n", "644")
        local code, out, err = s:run({"lock", file, "--", script})
        check(126, code, out, err)
        assert.are.equal("", out)
        assert_messages(err)
        assert.is_true(contains(err, "not-executable"), err)
        local sub = dir .. "/a-directory"
        assert.are.equal(0, helper.run("mkdir " .. quote(sub)))
        check(126, s:run({"lock", file, "--", sub}))
        assert.are.equal(0, cli.flock_try(file))
      end)

      it("runs an executable without a #! line with /bin/sh, as flock(1) does", function()
        local script = script_file("no-interpreter", "echo \"ran with $1\"; exit 5\n", "755")
        local code, out, err = s:run({"lock", file, "--", script, "arg"})
        check(5, code, out, err)
        assert.are.equal("ran with arg\n", out)
      end)

      it("126 when CMD is busy being written (ETXTBSY)", function()
        local script = script_file("busy", "#!/bin/sh\necho ran\n", "755")
        local ready = s:file("writer")
        s:track_pid_file(ready)
        -- a process that keeps the script open for writing
        s:spawn_shell("sh -c " .. quote("exec 3>>" .. quote(script) .. "; echo $$ > " .. quote(ready)
          .. "; sleep 20"))
        assert(cli.read_pid(ready, 10))
        local code, out, err = s:run({"lock", file, "--", script})
        check(126, code, out, err)
        assert.are.equal("", out)
        assert_messages(err)
      end)

      -- fork fails for an unprivileged user at its process limit: the command cannot start.
      -- Needs root, setpriv and prlimit (util-linux), and a tree user 65534 can read.
      local as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
      local unprivileged = helper.capture("id -u") == "0\n"
        and helper.run("command -v prlimit > /dev/null && " .. as_nobody .. " " .. helper.lua .. " "
          .. quote(cli.bin) .. " --version > /dev/null 2>&1") == 0
      local function as_nobody_at_nproc_limit()
        assert.are.equal(0, helper.run("chmod 777 " .. quote(dir)))
        return {prefix = as_nobody .. " prlimit --nproc=1:1"}
      end
      if unprivileged then
        it("71 when CMD cannot be started (fork fails), for lock and run", function()
          local opts = as_nobody_at_nproc_limit()
          local code, out, err = s:run({"lock", "-n", file, "--", "touch", dir .. "/ran"}, opts)
          check(71, code, out, err)
          assert_messages(err)
          assert.is_true(helper.exists(file), "portalock did not get as far as the lock")
          code, out, err = s:run({"run", "--dir", dir, "--name", "X", "--", "touch", dir .. "/ran"}, opts)
          check(71, code, out, err)
          assert_messages(err)
          assert.is_false(helper.exists(dir .. "/ran"))
          assert.are.equal(0, cli.flock_try(file))
          assert.are.equal(0, cli.flock_try(dir .. "/X.00.lock"))
        end)
      else
        pending("71 when CMD cannot be started: needs root, setpriv, prlimit and a tree user 65534 can read")
      end

      it("-c/--command STRING runs STRING with sh", function()
        local code, out, err = s:run({"lock", file, "-c", "echo $((1+2)); exit 5"})
        check(5, code, out, err)
        assert.are.equal("3\n", out)
        code, out, err = s:run({"lock", "-n", file, "--command", "echo \"$0\" >&2; exit 4"})
        check(4, code, out, err)
        assert.are.equal("", out)
        assert.are.equal("sh", err:match("([^/\n]*)\n$"), err)
      end)

      it("passes arguments unchanged, stdin and stdout and stderr through", function()
        local code, out, err = s:run({"lock", file, "--", "printf", "%s|", "a b", "c'd", "", "-n", "--"})
        check(0, code, out, err)
        assert.are.equal("a b|c'd||-n|--|", out)
        code, out, err = s:run({"lock", file, "--", "cat"}, {stdin = "data\nmore\n"})
        check(0, code, out, err)
        assert.are.equal("data\nmore\n", out)
        code, out, err = s:run({"lock", file, "--", "sh", "-c", "echo oops >&2"})
        check(0, code, out, err)
        assert.are.equal("oops\n", err)
      end)

      it("creates a relative FILE in the working directory", function()
        check(0, s:run({"lock", "relative.lock", "--", "true"}))
        assert.is_true(helper.exists(dir .. "/relative.lock"))
      end)
    end)

    describe("holds the lock while CMD runs", function()
      it("excludes flock(1) during CMD and not after", function()
        -- flock -n inside CMD opens the file anew: it conflicts with the lock CMD runs under
        check(1, s:run({"lock", file, "--", "flock", "-n", file, "true"}))
        check(1, s:run({"lock", file, "--", "flock", "-n", "-s", file, "true"}))
        assert.are.equal(0, cli.flock_try(file))
        local p = hold_with({"lock", file, "--"})
        assert.are.equal(1, cli.flock_try(file))
        assert.are.equal(1, cli.flock_try(file, true))
        assert.is_false(p:done())
        helper.write(go, "")
        check(0, p:wait(), p:stdout(), p:stderr())
        assert.are.equal(0, cli.flock_try(file))
      end)

      it("takes an exclusive lock by default and with -x, -e, --exclusive", function()
        for _, flag in ipairs({"-x", "-e", "--exclusive"}) do
          check(1, s:run({"lock", flag, file, "--", "flock", "-n", "-s", file, "true"}))
          check(0, s:run({"lock", flag, "-n", file, "--", "true"}))
        end
      end)

      it("takes a shared lock with -s and --shared", function()
        for _, flag in ipairs({"-s", "--shared"}) do
          check(0, s:run({"lock", flag, file, "--", "flock", "-n", "-s", file, "true"}))
          check(1, s:run({"lock", flag, file, "--", "flock", "-n", "-x", file, "true"}))
        end
      end)

      it("lets two shared holders in at once, and no exclusive one", function()
        local a = hold_with({"lock", "-s", file, "--"})
        local b = hold_with({"lock", "--shared", "-n", file, "--"})
        assert.is_false(a:done())
        assert.are.equal(1, cli.flock_try(file))
        assert.are.equal(0, cli.flock_try(file, true))
        check(1, s:run({"lock", "-n", file, "--", "true"}))
        check(0, s:run({"lock", "-s", "-n", file, "--", "true"}))
        helper.write(go, "")
        check(0, a:wait(), a:stdout(), a:stderr())
        check(0, b:wait(), b:stdout(), b:stderr())
      end)

      it("is excluded by a lock flock(1) holds", function()
        s:flock_hold(file)
        check(1, s:run({"lock", "-n", file, "--", "true"}))
        check(1, s:run({"lock", "-s", "-n", file, "--", "true"}))
      end)

      it("shares with flock -s holders", function()
        s:flock_hold(file, {shared = true})
        s:flock_hold(file, {shared = true})
        check(0, s:run({"lock", "-s", "-n", file, "--", "true"}))
        check(1, s:run({"lock", "-n", file, "--", "true"}))
      end)
    end)

    describe("on conflict", function()
      before_each(function()
        s:flock_hold(file)
      end)

      it("-n, --nonblocking, --nonblock and --nb fail at once with 1, without running CMD", function()
        for _, flag in ipairs({"-n", "--nonblocking", "--nonblock", "--nb"}) do
          local code, out, err, elapsed = s:run({"lock", flag, file, "--", "touch", dir .. "/ran"})
          check(1, code, out, err)
          assert.is_true(elapsed < 5, "elapsed " .. elapsed)
        end
        assert.is_false(helper.exists(dir .. "/ran"))
      end)

      it("long options abbreviate to any unambiguous prefix, as with getopt_long(3)", function()
        local code, out, err = s:run({"lock", "--excl", "--non", "--conflict=7", file, "--", "true"})
        check(7, code, out, err)
        local elapsed
        code, out, err, elapsed = s:run({"lock", "--share", "--time", "0.3", file, "--", "true"})
        check(1, code, out, err)
        assert.is_true(elapsed >= 0.25 and elapsed < 10, "elapsed " .. elapsed)
        check(1, s:run({"lock", "--nonb", "--verb", file, "--", "true"}))
      end)

      it("-n wins over -w, as in flock(1)", function()
        local code, out, err, elapsed = s:run({"lock", "-n", "-w", "20", file, "--", "true"})
        check(1, code, out, err)
        assert.is_true(elapsed < 10, "elapsed " .. elapsed)
      end)

      it("dies of SIGINT while it waits, as flock(1) does (no Lua error)", function()
        local p = s:spawn({"lock", file, "--", "touch", dir .. "/ran"})
        assert.is_true(helper.wait_until(function() return cli.has_open(p.pid, file) end, 10))
        helper.kill(p.pid, "INT")
        check(130, p:wait(15), p:stdout(), p:stderr())
        assert.are.equal("", p:stderr())
        assert.is_false(helper.exists(dir .. "/ran"))
      end)

      it("-E and --conflict-exit-code choose the exit status", function()
        check(42, s:run({"lock", "-n", "-E", "42", file, "--", "true"}))
        check(255, s:run({"lock", "--conflict-exit-code", "255", "-n", file, "--", "true"}))
        check(42, s:run({"lock", "-E", "42", "-w", "0.1", file, "--", "true"}))
        check(0, s:run({"lock", "-E", "0", "-n", file, "--", "touch", dir .. "/ran"}))
        assert.is_false(helper.exists(dir .. "/ran"))
      end)

      it("-w SECONDS gives up after about SECONDS", function()
        local code, out, err, elapsed = s:run({"lock", "-w", "0.3", file, "--", "touch", dir .. "/ran"})
        check(1, code, out, err)
        assert.is_true(elapsed >= 0.25 and elapsed < 10, "elapsed " .. elapsed)
        assert.is_false(helper.exists(dir .. "/ran"))
        for _, flag in ipairs({"--wait", "--timeout"}) do
          code, out, err, elapsed = s:run({"lock", flag, "0.3", file, "--", "true"})
          check(1, code, out, err)
          assert.is_true(elapsed >= 0.25 and elapsed < 10, flag .. " elapsed " .. elapsed)
        end
        check(1, s:run({"lock", "-w", "0", file, "--", "true"}))
      end)

      it("-v says why on stderr", function()
        local code, out, err = s:run({"lock", "-v", "-n", file, "--", "true"})
        check(1, code, out, err)
        assert_messages(err)
      end)
    end)

    for _, variant in ipairs({{"-w", "20"}, {}}) do
      local label = #variant > 0 and "with -w 20" or "without -w"
      it("waits " .. label .. " until the holder lets go, then runs CMD", function()
        s:flock_hold(file)
        local p = s:spawn(append(append({"lock"}, unpack(variant)), file, "--", "sh", "-c", "echo ran"))
        helper.sleep(0.5)
        assert.is_false(p:done(), "ended while the lock was held: " .. p:stderr())
        helper.write(dir .. "/release", "")
        check(0, p:wait(), p:stdout(), p:stderr())
        assert.are.equal("ran\n", p:stdout())
      end)
    end

    describe("hands its descriptor to CMD", function()
      it("so the lock outlives a portalock killed with SIGKILL, until CMD ends", function()
        local p, cmd = hold_with({"lock", file, "--"})
        assert.is_true(cli.has_open(cmd, file), "CMD has no descriptor of " .. file)
        assert.are.equal(1, cli.flock_try(file))
        helper.kill(p.pid, "KILL")
        assert.is_true(gone(p.pid))
        assert.is_true(helper.alive(cmd))
        assert.are.equal(1, cli.flock_try(file))
        helper.kill(cmd, "KILL")
        assert.is_true(helper.wait_until(function() return cli.flock_try(file) == 0 end, 5))
      end)

      it("and with -c STRING too", function()
        local ready = s:file("ready")
        s:track_pid_file(ready)
        local p = s:spawn({"lock", file, "-c", waiter(ready)})
        local cmd = assert(cli.read_pid(ready, 15), p:stderr())
        helper.kill(p.pid, "KILL")
        assert.is_true(gone(p.pid))
        assert.are.equal(1, cli.flock_try(file))
        helper.kill(cmd, "KILL")
        assert.is_true(helper.wait_until(function() return cli.flock_try(file) == 0 end, 5))
      end)

      it("but not with -o/--close: portalock stays the holder", function()
        local code, out, err = s:run({"lock", file, "--", "sh", "-c", "ls -l /proc/$$/fd"})
        check(0, code, out, err)
        assert.is_true(contains(out, "-> " .. file), out)
        for _, flag in ipairs({"-o", "--close"}) do
          code, out, err = s:run({"lock", flag, file, "--", "sh", "-c", "ls -l /proc/$$/fd"})
          check(0, code, out, err)
          assert.is_false(contains(out, "-> " .. file), out)
          check(1, s:run({"lock", flag, file, "--", "flock", "-n", file, "true"}))
          check(3, s:run({"lock", flag, file, "--", "sh", "-c", "exit 3"}))
        end
        local p, cmd = hold_with({"lock", "-o", file, "--"})
        assert.is_false(cli.has_open(cmd, file))
        assert.are.equal(1, cli.flock_try(file))
        helper.kill(p.pid, "KILL")
        assert.is_true(helper.wait_until(function() return cli.flock_try(file) == 0 end, 5))
        assert.is_true(helper.alive(cmd))
      end)
    end)

    describe("forwards signals to CMD", function()
      local cases = {{"TERM", {}}, {"INT", {}}, {"HUP", {}}, {"TERM", {"-o"}}}
      for _, case in ipairs(cases) do
        local signal, flags = case[1], case[2]
        it("SIG" .. signal .. " (lock " .. table.concat(flags, " ") .. ")", function()
          local args = append(append({"lock"}, unpack(flags)), file)
          local ready = s:file("ready")
          s:track_pid_file(ready)
          local script = string.format('trap "echo got %s; exit 7" %s; echo $$ > %s; i=0; '
            .. 'while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; exit 9', signal, signal, quote(ready))
          local p = s:spawn(append(args, "--", "sh", "-c", script))
          assert(cli.read_pid(ready, 15), p:stderr())
          helper.kill(p.pid, signal)
          local code = p:wait(15)
          check(7, code, p:stdout(), p:stderr())
          assert.is_true(contains(p:stdout(), "got " .. signal), p:stdout())
        end)
      end

      it("and exits 128+N when CMD dies of it", function()
        local p = hold_with({"lock", file, "--"})
        helper.kill(p.pid, "TERM")
        check(143, p:wait(15), p:stdout(), p:stderr())
        assert.is_true(helper.wait_until(function() return cli.flock_try(file) == 0 end, 5))
      end)
    end)

    it("-v and --verbose say on stderr that the lock is taken", function()
      for _, flag in ipairs({"-v", "--verbose"}) do
        local code, out, err = s:run({"lock", flag, file, "--", "echo", "out"})
        check(0, code, out, err)
        assert.are.equal("out\n", out)
        assert_messages(err)
      end
    end)

    it("exits 66 when FILE cannot be opened, without running CMD", function()
      local missing = dir .. "/missing/x.lock"
      local code, out, err = s:run({"lock", missing, "--", "touch", dir .. "/ran"})
      check(66, code, out, err)
      assert_messages(err)
      assert.is_true(contains(err, missing), err)
      assert.is_false(helper.exists(dir .. "/ran"))
      code, out, err = s:run({"lock", "-n", dir, "--", "touch", dir .. "/ran"})
      check(66, code, out, err)
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    -- Mounting a read-only tmpfs needs root with CAP_SYS_ADMIN (not every container has it).
    local function can_mount()
      local probe = helper.tmpdir()
      local ok = helper.run("mount -t tmpfs -o ro,size=64k none " .. quote(probe) .. " 2>/dev/null") == 0
      if ok then
        helper.run("umount " .. quote(probe))
      end
      helper.rmtree(probe)
      return ok
    end
    if can_mount() then
      it("exits 73 when FILE cannot be created on a read-only filesystem, as flock(1)", function()
        local ro = dir .. "/ro"
        assert.are.equal(0, helper.run("mkdir " .. quote(ro) .. " && mount -t tmpfs -o ro,size=64k none "
          .. quote(ro)))
        finally(function() helper.run("umount " .. quote(ro)) end)
        local code, out, err = s:run({"lock", ro .. "/x.lock", "--", "touch", dir .. "/ran"})
        check(73, code, out, err)
        assert.is_true(contains(err, ro .. "/x.lock"), err)
        assert.is_false(helper.exists(dir .. "/ran"))
      end)
    else
      pending("exits 73 on a read-only filesystem: needs the right to mount a tmpfs")
    end

    it("exits 66 when FILE cannot be a lock file: a FIFO, a device", function()
      local fifo = dir .. "/fifo"
      assert.are.equal(0, helper.run("mkfifo " .. quote(fifo)))
      for _, path in ipairs({fifo, "/dev/null"}) do
        local code, out, err = s:run({"lock", "-n", path, "--", "touch", dir .. "/ran"}, {timeout = 10})
        check(66, code, out, err)
        assert_messages(err)
        assert.is_true(contains(err, path), err)
      end
      assert.is_false(helper.exists(dir .. "/ran"))
    end)
  end)

  describe("opens FILE read-only, as flock(1) does", function()
    it("so a running executable can be locked (no ETXTBSY)", function()
      local program = dir .. "/program"
      assert.are.equal(0, helper.run("cp /bin/sleep " .. quote(program)))
      local pid = s:spawn_shell(quote(program) .. " 20")
      assert.is_true(helper.wait_until(function()
        return helper.run("readlink /proc/" .. pid .. "/exe | grep -q program") == 0
      end, 10), "the program never ran")
      local code, out, err = s:run({"lock", "-n", program, "--", "echo", "locked"})
      check(0, code, out, err)
      assert.are.equal("locked\n", out)
    end)

    -- flock(1)'s self-locking boilerplate: spec/upstream/flock_spec.lua, with the other EXAMPLES.

    local as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    if helper.capture("id -u") == "0\n" then
      it("so a file this user may only read is locked, and excludes other users", function()
        assert.are.equal(0, helper.run("chmod 755 " .. quote(dir)))
        helper.write(file, "")
        assert.are.equal(0, helper.run("chmod 644 " .. quote(file)))
        local code, out, err = s:run({"lock", "-n", file, "--", "flock", "-n", file, "true"},
          {prefix = as_nobody})
        check(1, code, out, err) -- CMD's own flock(1) conflicts with the lock it runs under
        check(0, s:run({"lock", "-n", file, "--", "true"}, {prefix = as_nobody}))
      end)
    else
      pending("a file this user may only read: needs root to act as a second user")
    end
  end)

  describe("-F/--no-fork", function()
    for _, flag in ipairs({"-F", "--no-fork"}) do
      it(flag .. " becomes CMD (same PID), which holds the lock until it ends", function()
        local p, pid = hold_with({"lock", flag, file, "--"})
        assert.are.equal(p.pid, pid, "CMD ran in another process")
        assert.are.equal(1, cli.flock_try(file))
        helper.write(go, "")
        check(0, p:wait(), p:stdout(), p:stderr())
        assert.are.equal(0, cli.flock_try(file))
      end)
    end

    it("exits with CMD's status, 127 when CMD does not exist", function()
      check(3, s:run({"lock", "-F", file, "-c", "exit 3"}))
      local code, out, err = s:run({"lock", "-F", file, "--", dir .. "/missing"})
      check(127, code, out, err)
      assert_messages(err)
      assert.is_true(contains(err, dir .. "/missing"), err)
    end)
  end)

  describe("usage errors exit 64 and name what is wrong", function()
    local function u(name)
      return dir .. "/" .. name
    end
    -- {arguments, text the message must contain (or nil)}; FILE stands for a lock file that
    -- must not be created.
    local cases = {
      {{"lock", "--bogus", "FILE", "true"}, "--bogus"},
      {{"lock", "-q", "FILE", "true"}, "-q"},
      {{"lock"}},
      {{"lock", "-n"}},
      {{"lock", "FILE"}},
      {{"lock", "FILE", "--"}},
      {{"lock", "FILE", "-c"}},
      {{"lock", "-w", "-1", "FILE", "true"}, "-1"},
      {{"lock", "-w", "abc", "FILE", "true"}, "abc"},
      {{"lock", "--wait", "1x", "FILE", "true"}, "1x"},
      {{"lock", "-w"}, "-w"},
      {{"lock", "-E", "300", "FILE", "true"}, "300"},
      {{"lock", "-E", "256", "FILE", "true"}, "256"},
      {{"lock", "-E", "-1", "FILE", "true"}, "-1"},
      {{"lock", "-E", "abc", "FILE", "true"}, "abc"},
      {{"run", "-j", "0", "--dir", "DIR", "--", "true"}, "0"},
      {{"run", "-j", "10001", "--dir", "DIR", "--", "true"}, "10001"},
      {{"run", "--jobs", "1.5", "--dir", "DIR", "--", "true"}, "1.5"},
      {{"run", "-j", "two", "--dir", "DIR", "--", "true"}, "two"},
      {{"run", "--dir", "DIR"}},
      {{"run", "--bogus", "--dir", "DIR", "--", "true"}, "--bogus"},
      {{"run", "-w", "abc", "--dir", "DIR", "--", "true"}, "abc"},
      {{"run", "-E", "300", "--dir", "DIR", "--", "true"}, "300"},
      {{"run", "--name"}, "--name"},
      {{"frobnicate", "FILE"}, "frobnicate"},
      {{}},
      {{"--bogus"}, "--bogus"},
      {{"--config"}, "--config"},
      {{"status"}},
      {{"status", "--bogus", "FILE"}, "--bogus"},
      {{"write"}},
      {{"write", "--bogus", "FILE"}, "--bogus"},
      {{"write", "."}, '"."'},
      {{"write", ".."}, '".."'},
      {{"write", ""}, '""'},
      {{"write", "a/"}, '"a/"'},
      {{"write", ("n"):rep(5000)}, "FILE"},
      {{"lock", "FILE", "--", ""}, "CMD"},
      {{"lock", "FILE", ""}, "CMD"},
      {{"run", "--dir", "DIR", "--", ""}, "CMD"},
      {{"lock", "-F", "-o", "FILE", "true"}, "-o"},
      {{"lock", "--c", "FILE", "true"}, "'--close' '--command' '--conflict-exit-code'"},
      {{"lock", "--n", "FILE", "true"}, "'--no-fork' '--nonblocking'"},
      {{"run", "--n", "--dir", "DIR", "--", "true"}, "'--name' '--nonblocking'"},
      {{"lock", "--time", "x", "FILE", "true"}, "--timeout"},
      {{"lock", "--excl=1", "FILE", "true"}, "--exclusive"},
      {{"--conf"}, "--config"},
      {{"lock", "-u", "FILE", "true"}, "-u"},
      {{"lock", "--fd", "3", "true"}, "--fd"},
      {{"lock", "--fcntl", "FILE", "true"}, "--fcntl"},
      {{"lock", "--start", "0", "FILE", "true"}, "--start"},
      {{"lock", "--len", "1", "FILE", "true"}, "--length"},
    }
    for _, case in ipairs(cases) do
      local args, fragment = case[1], case[2]
      local shown = {}
      for i, arg in ipairs(args) do
        shown[i] = #arg > 40 and arg:sub(1, 12) .. "...(" .. #arg .. " bytes)" or arg
      end
      it("portalock " .. table.concat(shown, " "), function()
        local real = {}
        for i, arg in ipairs(args) do
          real[i] = arg == "FILE" and u("u.lock") or arg == "DIR" and dir or arg
        end
        local code, out, err = s:run(real, {env = {TMPDIR = dir}})
        check(64, code, out, err)
        assert.are.equal("portalock: ", err:sub(1, 11), err)
        if fragment then
          assert.is_true(contains(err, fragment), "no " .. fragment .. " in: " .. err)
        end
        assert.is_false(helper.exists(u("u.lock")), "the lock file was created")
        assert.are.same({}, cli.listing(dir), "files were created")
      end)
    end
  end)

  describe("run", function()
    local function run_args(...)
      return append({"run", "--name", "X", "--dir", dir}, ...)
    end

    it("runs CMD in a slot and exits with its status", function()
      check(0, s:run(run_args("--", "true")))
      check(3, s:run(run_args("--", "sh", "-c", "exit 3")))
      check(3, s:run(run_args("sh", "-c", "exit 3")))
      check(143, s:run(run_args("--", "sh", "-c", "kill -TERM $$")))
      check(127, s:run(run_args("--", dir .. "/no-such-command")))
      check(127, s:run(run_args("--", "-c", "true"))) -- run has no -c: "-c" is CMD
      local code, out, err = s:run(run_args("--", "printf", "%s|", "a b", "-n"), {stdin = "x"})
      check(0, code, out, err)
      assert.are.equal("a b|-n|", out)
    end)

    it("is a mutex by default: one slot, DIR/NAME.00.lock", function()
      local p = hold_with(run_args("--"))
      assert.is_true(helper.exists(dir .. "/X.00.lock"))
      assert.are.equal(1, cli.flock_try(dir .. "/X.00.lock"))
      check(1, s:run(run_args("-n", "--", "true")))
      assert.is_false(helper.exists(dir .. "/X.01.lock"))
      helper.write(go, "")
      check(0, p:wait(), p:stdout(), p:stderr())
      check(0, s:run(run_args("-n", "--", "true")))
    end)

    it("-j/--jobs 2 has two slots, DIR/NAME.00.lock and DIR/NAME.01.lock", function()
      hold_with(run_args("-j", "2", "--"))
      check(0, s:run(run_args("-j", "2", "-n", "--", "true")))
      hold_with(run_args("--jobs", "2", "--"))
      local code, out, err = s:run(run_args("-j", "2", "-n", "--", "touch", dir .. "/ran"))
      check(1, code, out, err)
      assert.is_false(helper.exists(dir .. "/ran"))
      assert.are.equal(1, cli.flock_try(dir .. "/X.00.lock"))
      assert.are.equal(1, cli.flock_try(dir .. "/X.01.lock"))
      assert.is_false(helper.exists(dir .. "/X.02.lock"))
      check(0, s:run(run_args("-j", "3", "-n", "--", "true")))
      check(0, s:run(run_args("-j", "10000", "-n", "--", "true")))
    end)

    -- n commands at once through `run ARGS`, each recording its start and end; returns the
    -- intervals.
    local function concurrently(n, args)
      local procs = {}
      for i = 1, n do
        local log = dir .. "/job." .. i
        local script = "date +%s.%N > " .. quote(log .. ".start") .. "; sleep 0.3; date +%s.%N > "
          .. quote(log .. ".end")
        procs[i] = s:spawn(append(args, "--", "sh", "-c", script))
      end
      local intervals = {}
      for i, p in ipairs(procs) do
        check(0, p:wait(30), p:stdout(), p:stderr())
        local log = dir .. "/job." .. i
        local started, ended = tonumber(helper.read(log .. ".start")), tonumber(helper.read(log .. ".end"))
        assert.is_truthy(started and ended, "job " .. i .. " did not run")
        intervals[i] = {started, ended}
      end
      return intervals
    end

    it("-j 2: four commands at once, at most two at a time, all run", function()
      local intervals = concurrently(4, run_args("-j", "2", "-w", "60"))
      assert.are.equal(4, #intervals)
      local most = cli.max_overlap(intervals)
      assert.is_true(most <= 2, "overlap " .. most)
      for _, name in ipairs(cli.listing(dir)) do
        assert.is_truthy(name == "X.00.lock" or name == "X.01.lock" or name:match("^job%.%d%.%a+$"), name)
      end
    end)

    it("without -j: three commands at once run one at a time", function()
      local intervals = concurrently(3, run_args())
      assert.are.equal(1, cli.max_overlap(intervals))
    end)

    describe("when every slot is held", function()
      before_each(function()
        hold_with(run_args("--"))
      end)

      it("-n and --nonblock fail at once with 1, -E with its code", function()
        local code, out, err, elapsed = s:run(run_args("-n", "--", "touch", dir .. "/ran"))
        check(1, code, out, err)
        assert.is_true(elapsed < 5, "elapsed " .. elapsed)
        check(1, s:run(run_args("--nonblock", "--", "true")))
        check(1, s:run(run_args("--nb", "--", "true")))
        check(42, s:run(run_args("-n", "-E", "42", "--", "true")))
        check(42, s:run(run_args("-w", "0.1", "--conflict-exit-code", "42", "--", "true")))
        assert.is_false(helper.exists(dir .. "/ran"))
      end)

      it("-w SECONDS gives up after about SECONDS", function()
        local code, out, err, elapsed = s:run(run_args("-w", "0.3", "--", "true"))
        check(1, code, out, err)
        assert.is_true(elapsed >= 0.25 and elapsed < 10, "elapsed " .. elapsed)
      end)

      it("-w waits for a slot that frees up", function()
        local p = s:spawn(run_args("-w", "20", "--", "sh", "-c", "echo ran"))
        helper.sleep(0.5)
        assert.is_false(p:done(), p:stderr())
        helper.write(go, "")
        check(0, p:wait(), p:stdout(), p:stderr())
        assert.are.equal("ran\n", p:stdout())
      end)

      it("-v says why on stderr", function()
        local code, out, err = s:run(run_args("-v", "-n", "--", "true"))
        check(1, code, out, err)
        assert_messages(err)
      end)
    end)

    it("-v and --verbose say on stderr that a slot is taken", function()
      for _, flag in ipairs({"-v", "--verbose"}) do
        local code, out, err = s:run(run_args(flag, "--", "echo", "out"))
        check(0, code, out, err)
        assert.are.equal("out\n", out)
        assert_messages(err)
        assert.is_true(contains(err, ".00.lock (one of 1 slots)"), err)
      end
    end)

    it("hands the slot's descriptor to CMD: a SIGKILLed portalock leaves it held", function()
      local p, cmd = hold_with(run_args("--"))
      local slot = dir .. "/X.00.lock"
      assert.is_true(cli.has_open(cmd, slot), "CMD has no descriptor of " .. slot)
      helper.kill(p.pid, "KILL")
      assert.is_true(gone(p.pid))
      assert.is_true(helper.alive(cmd))
      assert.are.equal(1, cli.flock_try(slot))
      check(1, s:run(run_args("-n", "--", "true")))
      helper.kill(cmd, "KILL")
      assert.is_true(helper.wait_until(function() return cli.flock_try(slot) == 0 end, 5))
    end)

    it("forwards SIGTERM to CMD", function()
      local ready = s:file("ready")
      s:track_pid_file(ready)
      local script = 'trap "echo got TERM; exit 7" TERM; echo $$ > ' .. quote(ready)
        .. "; i=0; while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; exit 9"
      local p = s:spawn(run_args("--", "sh", "-c", script))
      assert(cli.read_pid(ready, 15), p:stderr())
      helper.kill(p.pid, "TERM")
      check(7, p:wait(15), p:stdout(), p:stderr())
      assert.is_true(contains(p:stdout(), "got TERM"), p:stdout())
    end)

    it("defaults to --name bounded_semaphore in $TMPDIR", function()
      check(0, s:run({"run", "--", "true"}, {env = {TMPDIR = dir}}))
      assert.is_true(helper.exists(dir .. "/bounded_semaphore.00.lock"))
      check(0, s:run({"run", "--name", "Y", "--", "true"}, {env = {TMPDIR = dir}}))
      assert.is_true(helper.exists(dir .. "/Y.00.lock"))
    end)

    it("exits 66 when the directory does not exist", function()
      local code, out, err = s:run({"run", "--dir", dir .. "/missing", "--name", "X", "--", "touch", dir .. "/ran"})
      check(66, code, out, err)
      assert_messages(err)
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    describe("with Python's portalocker.BoundedSemaphore", function()
      if not cli.python then
        pending("skipped: PORTALOCK_TEST_PYTHON is not set")
        return
      end

      local function python(code, ...)
        local parts = {helper.peer_env .. "timeout -k 2 30", quote(cli.python), "-c", quote(code)}
        for i = 1, select("#", ...) do
          parts[#parts + 1] = quote((select(i, ...)))
        end
        return table.concat(parts, " ")
      end

      it("is excluded by a slot Python holds", function()
        local ready = dir .. "/py.ready"
        s:spawn_shell(python([[
import portalocker, sys, time
s = portalocker.BoundedSemaphore(1, name=sys.argv[1], directory=sys.argv[2])
s.acquire()
open(sys.argv[3], "w").write(str(s.lock.filename))
time.sleep(20)
]], "X", dir, ready))
        assert.is_true(helper.wait_until(function() return helper.exists(ready) end, 15))
        local code, out, err = s:run({"run", "-j", "1", "-n", "--name", "X", "--dir", dir, "--", "true"})
        check(1, code, out, err)
        assert.are.equal(1, cli.flock_try(dir .. "/X.00.lock"))
      end)

      it("excludes Python from the slot it holds", function()
        local try = [[
import portalocker, sys
s = portalocker.BoundedSemaphore(1, name=sys.argv[1], directory=sys.argv[2], timeout=0.2,
                                 check_interval=0.05)
try:
    s.acquire()
except portalocker.AlreadyLocked:
    sys.exit(1)
sys.exit(0)
]]
        local p = hold_with(run_args("--"))
        local output, code = helper.capture(python(try, "X", dir))
        assert.are.equal(1, code, output)
        helper.write(go, "")
        check(0, p:wait(), p:stdout(), p:stderr())
        output, code = helper.capture(python(try, "X", dir))
        assert.are.equal(0, code, output)
      end)
    end)
  end)

  describe("status", function()
    it('prints "FILE: free" and exits 0 for a free file', function()
      helper.write(file, "")
      local code, out, err = s:run({"status", file})
      check(0, code, out, err)
      assert.are.equal(file .. ": free\n", out)
    end)

    it("names the PID of flock(1) holding the file, and exits 1", function()
      local pid = s:flock_hold(file)
      local code, out, err = s:run({"status", file})
      check(1, code, out, err)
      assert.are.equal(string.format("%s: held (exclusive) by PID %d [flock]\n", file, pid), out)
    end)

    it("names both PIDs of a shared lock", function()
      local a = s:flock_hold(file, {shared = true})
      local b = s:flock_hold(file, {shared = true})
      local code, out, err = s:run({"status", file})
      check(1, code, out, err)
      local x, y = out:match("^" .. file:gsub("%p", "%%%0") .. ": held %(shared%) by PIDs (%d+) (%d+) %[flock%]\n$")
      assert.is_truthy(x, out)
      local got = {tonumber(x), tonumber(y)}
      table.sort(got)
      local want = {a, b}
      table.sort(want)
      assert.are.same(want, got)
    end)

    it("names portalock, not the command that inherited the lock", function()
      local script = "echo $PPID; exec " .. cli.command_line({"status", file})
      local code, out, err = s:run({"lock", file, "--", "sh", "-c", script})
      check(1, code, out, err)
      local ppid, line = out:match("^(%d+)\n(.*)$")
      assert.is_truthy(ppid, out)
      assert.are.equal(string.format("%s: held (exclusive) by PID %s [flock]\n", file, ppid), line)
    end)

    it("says an OFD lock is held, without a PID", function()
      local pid = helper.hold("Lock", file, dir, {backend = "ofd"})
      s.pids[#s.pids + 1] = pid
      local code, out, err = s:run({"status", file})
      check(1, code, out, err)
      assert.are.equal(file .. ": held (exclusive) [ofd]\n", out)
    end)

    it("reports several files, one line each, in order", function()
      local other = dir .. "/y.lock"
      helper.write(file, "")
      helper.write(other, "")
      local code, out, err = s:run({"status", file, other})
      check(0, code, out, err)
      assert.are.equal(file .. ": free\n" .. other .. ": free\n", out)
      local pid = s:flock_hold(other)
      code, out, err = s:run({"status", file, other})
      check(1, code, out, err)
      assert.are.equal(string.format("%s: free\n%s: held (exclusive) by PID %d [flock]\n", file, other, pid), out)
    end)

    it("exits 66 for a missing file", function()
      local code, out, err = s:run({"status", dir .. "/missing.lock"})
      check(66, code, out, err)
      assert_messages(err)
      assert.is_true(contains(err, dir .. "/missing.lock"), err)
      helper.write(file, "")
      code, out, err = s:run({"status", file, dir .. "/missing.lock"})
      check(66, code, out, err)
      assert.is_false(helper.exists(dir .. "/missing.lock"))
    end)
  end)

  describe("write", function()
    local target, sub
    before_each(function()
      sub = dir .. "/w"
      assert.are.equal(0, helper.run("mkdir " .. quote(sub)))
      target = sub .. "/data.txt"
    end)

    it("writes standard input to FILE, leaving no temporary file", function()
      local code, out, err = s:run({"write", target}, {stdin = "hello\n"})
      check(0, code, out, err)
      assert.are.equal("hello\n", helper.read(target))
      assert.are.same({"data.txt"}, cli.listing(sub))
      code, out, err = s:run({"write", target}, {stdin_command = "echo hello again"})
      check(0, code, out, err)
      assert.are.equal("hello again\n", helper.read(target))
    end)

    it("replaces the content of an existing FILE, atomically", function()
      local old = "old content, longer than the new one\n"
      helper.write(target, old)
      local p = s:spawn({"write", target}, {stdin_command = "printf 'new1\\n'; sleep 0.6; printf 'new2\\n'"})
      local deadline = core.monotonic() + 15
      while not p:done() and core.monotonic() < deadline do
        local now = helper.read(target)
        assert.is_truthy(now == old or now == "new1\nnew2\n", "a reader saw: " .. tostring(now))
        helper.sleep(0.02)
      end
      check(0, p:wait(), p:stdout(), p:stderr())
      assert.are.equal("new1\nnew2\n", helper.read(target))
      assert.are.same({"data.txt"}, cli.listing(sub))
      check(0, s:run({"write", target}, {stdin = ""}))
      assert.are.equal("", helper.read(target))
    end)

    it("--no-replace exits 73 when FILE exists, leaving it as it was", function()
      helper.write(target, "keep\n")
      local code, out, err = s:run({"write", "--no-replace", target}, {stdin = "lost\n"})
      check(73, code, out, err)
      assert_messages(err)
      assert.are.equal("keep\n", helper.read(target))
      assert.are.same({"data.txt"}, cli.listing(sub))
    end)

    it("exits 73 when FILE is a FIFO, leaving it a FIFO", function()
      assert.are.equal(0, helper.run("mkfifo " .. quote(target)))
      local code, out, err = s:run({"write", target}, {stdin = "x\n"})
      check(73, code, out, err)
      assert_messages(err)
      assert.is_truthy(err:find(target .. "' is a FIFO", 1, true), err)
      assert.are.equal(0, helper.run("test -p " .. quote(target)))
      assert.are.same({"data.txt"}, cli.listing(sub))
    end)

    it("--no-replace creates a missing FILE", function()
      local code, out, err = s:run({"write", "--no-replace", target}, {stdin = "new\n"})
      check(0, code, out, err)
      assert.are.equal("new\n", helper.read(target))
      assert.are.same({"data.txt"}, cli.listing(sub))
    end)

    it("fails (66 or 73) in a missing directory, leaving nothing behind", function()
      local code, out, err = s:run({"write", sub .. "/missing/data.txt"}, {stdin = "x\n"})
      assert.is_truthy(code == 66 or code == 73, cli.describe(code, out, err))
      assert_messages(err)
      assert.are.same({}, cli.listing(sub))
      assert.are.same({"w"}, cli.listing(dir))
    end)

    it("exits 74 on a read error of standard input, leaving FILE as it was", function()
      helper.write(target, "keep\n")
      local code, out, err = s:run({"write", target}, {stdin_file = dir})
      check(74, code, out, err)
      assert_messages(err)
      assert.are.equal("keep\n", helper.read(target))
      assert.are.same({"data.txt"}, cli.listing(sub))
    end)
  end)

  describe("with a config", function()
    local conf, m_file, t_file

    before_each(function()
      conf = dir .. "/app.conf.lua"
      m_file, t_file = dir .. "/m.lock", dir .. "/t.lock"
      helper.write(conf, string.format([[
directory %q
lock "m" { filename = %q }
lock "t" { filename = %q, timeout = 0.3 }
bounded_semaphore "w" { maximum = 2, name = "w", directory = %q }
rlock "r" { filename = "r.lock" }
temporary_lock "tmp" { filename = "tmp.lock" }
pid_file_lock "pid" { filename = "daemon.pid" }
bounded_semaphore "slow" { maximum = 1, name = "slow-slots", directory = %q, timeout = 0.3 }
]], dir, m_file, t_file, dir, dir))
    end)

    it("lock NAME takes the file of an rlock, a temporary_lock and a pid_file_lock", function()
      -- a pid_file_lock locks "<filename>.lock" and writes the holder's PID into <filename>
      for _, case in ipairs({{"r", "r.lock"}, {"tmp", "tmp.lock"}, {"pid", "daemon.pid.lock"}}) do
        local path = dir .. "/" .. case[2]
        local code, out, err = s:run({"--config", conf, "lock", "-n", case[1], "--", "flock", "-n", path, "true"})
        check(1, code, out, err)
        code, out, err = s:run({"--config", conf, "lock", "-n", case[1], "--", "true"})
        check(0, code, out, err)
      end
      -- a temporary_lock's file exists only while held
      local code, out, err = s:run({"--config", conf, "lock", "-n", "tmp", "--", "ls", dir})
      check(0, code, out, err)
      assert.is_true(contains(out, "tmp.lock\n"), out)
      assert.is_false(helper.exists(dir .. "/tmp.lock"))
      code, out, err = s:run({"--config", conf, "lock", "-n", "pid", "--", "sh", "-c", "echo $PPID; cat daemon.pid"})
      check(0, code, out, err)
      local ppid, written = out:match("^(%d+)\n(%d+)\n?$")
      assert.are.equal(ppid, written, out)
      assert.is_false(helper.exists(dir .. "/daemon.pid"))
    end)

    it("lock FILE that is no declared name is a file", function()
      check(0, s:run({"--config", conf, "lock", "-n", "other.lock", "--", "true"}))
      assert.is_true(helper.exists(dir .. "/other.lock"))
    end)

    it("run --name NAME takes the declared name, directory and timeout; --dir and -n override", function()
      local sub = dir .. "/sub"
      assert.are.equal(0, helper.run("mkdir " .. quote(sub)))
      check(0, s:run({"--config", conf, "run", "--name", "slow", "--", "true"}))
      assert.is_true(helper.exists(dir .. "/slow-slots.00.lock"))
      check(0, s:run({"--config", conf, "run", "--name", "slow", "--dir", sub, "--", "true"}))
      assert.is_true(helper.exists(sub .. "/slow-slots.00.lock"))
      hold_with({"--config", conf, "run", "--name", "slow", "--"})
      local code, out, err, elapsed = s:run({"--config", conf, "run", "--name", "slow", "--", "true"})
      check(1, code, out, err)
      assert.is_true(elapsed >= 0.25 and elapsed < 10, "elapsed " .. elapsed)
      check(1, s:run({"--config", conf, "run", "--name", "slow", "-n", "--", "true"}))
      check(0, s:run({"--config", conf, "run", "--name", "slow", "--dir", sub, "-n", "--", "true"}))
    end)

    it("--config FILE: lock NAME locks the declared file", function()
      local code, out, err = s:run({"--config", conf, "lock", "-n", "m", "--", "true"})
      check(0, code, out, err)
      assert.is_true(helper.exists(m_file))
      check(1, s:run({"--config", conf, "lock", "m", "--", "flock", "-n", m_file, "true"}))
      s:flock_hold(m_file)
      check(1, s:run({"--config", conf, "lock", "-n", "m", "--", "true"}))
    end)

    it("lock NAME waits for the declared timeout unless -n or -w is given", function()
      s:flock_hold(t_file)
      local code, out, err, elapsed = s:run({"--config", conf, "lock", "t", "--", "touch", dir .. "/ran"})
      check(1, code, out, err)
      assert.is_true(elapsed >= 0.25 and elapsed < 10, "elapsed " .. elapsed)
      assert.is_false(helper.exists(dir .. "/ran"))
      check(1, s:run({"--config", conf, "lock", "-n", "t", "--", "true"}))
      check(1, s:run({"--config", conf, "lock", "-w", "0.1", "t", "--", "true"}))
    end)

    it("run --name NAME uses the declared maximum and directory, -j overrides", function()
      local function run(...)
        return s:run(append({"--config", conf, "run", "--name", "w"}, ...))
      end
      -- (slots are tried in a random order)
      hold_with({"--config", conf, "run", "--name", "w", "--"})
      check(0, run("-n", "--", "true"))
      hold_with({"--config", conf, "run", "--name", "w", "--"})
      check(1, run("-n", "--", "true"))
      check(1, run("-j", "1", "-n", "--", "true"))
      assert.are.equal(1, cli.flock_try(dir .. "/w.00.lock"))
      assert.are.equal(1, cli.flock_try(dir .. "/w.01.lock"))
      check(0, run("-j", "3", "-n", "--", "true"))
    end)

    it("status NAME reports the declared file, or every slot of a semaphore", function()
      helper.write(m_file, "")
      local code, out, err = s:run({"--config", conf, "status", "m"})
      check(0, code, out, err)
      assert.are.equal(m_file .. ": free\n", out)
      local pid = s:flock_hold(m_file)
      code, out, err = s:run({"--config", conf, "status", "m"})
      check(1, code, out, err)
      assert.are.equal(string.format("%s: held (exclusive) by PID %d [flock]\n", m_file, pid), out)
      local a = hold_with({"--config", conf, "run", "--name", "w", "--"})
      local b = hold_with({"--config", conf, "run", "--name", "w", "--"})
      code, out, err = s:run({"--config", conf, "status", "w"})
      check(1, code, out, err)
      local lines = {}
      for line in out:gmatch("[^\n]+") do
        lines[#lines + 1] = line
      end
      assert.are.equal(2, #lines, out)
      assert.are.equal(dir .. "/w.00.lock: held (exclusive) by PID", lines[1]:match("^(.-) %d+ %[flock%]$"))
      assert.are.equal(dir .. "/w.01.lock: held (exclusive) by PID", lines[2]:match("^(.-) %d+ %[flock%]$"))
      local pids = {tonumber(lines[1]:match("(%d+) %[")), tonumber(lines[2]:match("(%d+) %["))}
      table.sort(pids)
      local want = {a.pid, b.pid}
      table.sort(want)
      assert.are.same(want, pids)
      helper.write(go, "")
      check(0, a:wait(), a:stdout(), a:stderr())
      check(0, b:wait(), b:stdout(), b:stderr())
      code, out, err = s:run({"--config", conf, "status", "w"})
      check(0, code, out, err)
      assert.are.equal(dir .. "/w.00.lock: free\n" .. dir .. "/w.01.lock: free\n", out)
    end)

    it("status NAME of a declaration never used yet is free; a counting semaphore has no file", function()
      helper.write(conf, string.format([[
directory %q
bounded_semaphore "fresh" { maximum = 2, name = "fresh", directory = %q }
temporary_lock "tmp" { filename = "tmp.lock" }
semaphore "count" { value = 1, name = "portalock-cli-spec-never-made" }
]], dir, dir))
      local code, out, err = s:run({"--config", conf, "status", "fresh", "tmp", "count"})
      check(0, code, out, err)
      assert.are.equal(string.format("%s/fresh.00.lock: free (no file yet)\n%s/fresh.01.lock: free (no file yet)\n"
        .. "%s/tmp.lock: free (no file yet)\n"
        .. "count: a counting semaphore (portalock-cli-spec-never-made), which has no lock file\n",
        dir, dir, dir), out)
      assert.is_false(helper.exists("/dev/shm/sem.portalock-cli-spec-never-made"))
    end)

    it("$PORTALOCK_CONFIG works as --config does, and --config wins over it", function()
      local env = {env = {PORTALOCK_CONFIG = conf}}
      check(0, s:run({"lock", "-n", "m", "--", "true"}, env))
      assert.is_true(helper.exists(m_file))
      check(1, s:run({"lock", "m", "--", "flock", "-n", m_file, "true"}, env))
      local code, out, err = s:run({"status", "m"}, env)
      check(0, code, out, err)
      assert.are.equal(m_file .. ": free\n", out)
      hold_with({"run", "--name", "w", "--"}, env)
      check(0, s:run({"run", "--name", "w", "-n", "--", "true"}, env))
      local bad = dir .. "/bad.conf.lua"
      helper.write(bad, "lock 'm' { colour = 1 }\n")
      check(0, s:run({"--config", conf, "lock", "-n", "m", "--", "true"}, {env = {PORTALOCK_CONFIG = bad}}))
    end)

    it("a malformed config exits 78 with its file:line: message", function()
      local bad = dir .. "/bad.conf.lua"
      helper.write(bad, string.format('directory %q\nlock "a" { filename = "a.lock", colour = 1 }\n', dir))
      local code, out, err = s:run({"--config", bad, "lock", "-n", "a", "--", "touch", dir .. "/ran"})
      check(78, code, out, err)
      assert.are.equal("portalock: " .. bad .. ":2:", err:sub(1, #bad + 14), err)
      assert.is_true(contains(err, "colour"), err)
      code, out, err = s:run({"status", "a"}, {env = {PORTALOCK_CONFIG = bad}})
      check(78, code, out, err)
      assert.are.equal("portalock: " .. bad .. ":2:", err:sub(1, #bad + 14), err)
      helper.write(bad, "lock 'a' {\n")
      code, out, err = s:run({"--config", bad, "status", "a"})
      check(78, code, out, err)
      assert.are.equal("portalock: " .. bad .. ":", err:sub(1, #bad + 12), err)
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    it("lock on a bounded_semaphore's name is a usage error (64)", function()
      local code, out, err = s:run({"--config", conf, "lock", "-n", "w", "--", "touch", dir .. "/ran"})
      check(64, code, out, err)
      assert_messages(err)
      assert.is_true(contains(err, "semaphore"), err)
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    it("a missing config file is an error naming it", function()
      local missing = dir .. "/missing.conf.lua"
      local code, out, err = s:run({"--config", missing, "lock", "-n", "m", "--", "touch", dir .. "/ran"})
      assert.is_truthy(code == 66 or code == 78, cli.describe(code, out, err))
      assert_messages(err)
      assert.is_true(contains(err, missing), err)
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    it("--conf, an abbreviation of --config, works as --config does", function()
      check(1, s:run({"--conf", conf, "lock", "-n", "m", "--", "flock", "-n", m_file, "true"}))
    end)

    it("-F is refused for a temporary_lock and a pid_file_lock, whose files need removing", function()
      for _, name in ipairs({"tmp", "pid"}) do
        local code, out, err = s:run({"--config", conf, "lock", "-F", name, "--", "touch", dir .. "/ran"})
        check(64, code, out, err)
        assert.is_true(contains(err, name) and contains(err, "-F"), err)
      end
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    -- A config that cannot be read as one is refused promptly (no hang, no reading without
    -- end) with 66, as a missing one, naming it.
    it("a directory, a device, a FIFO or a file over the size limit as the config exits 66", function()
      local fifo, big = dir .. "/fifo.conf.lua", dir .. "/big.conf.lua"
      assert.are.equal(0, helper.run("mkfifo " .. quote(fifo)))
      helper.write(big, ("-- padding\n"):rep(math.ceil((portalock.config.FILE_LIMIT_BYTES + 1) / 11)))
      for _, path in ipairs({dir, "/dev/zero", fifo, big}) do
        local code, out, err = s:run({"--config", path, "lock", "-n", "m", "--", "touch", dir .. "/ran"},
          {timeout = 20})
        assert.are.equal(66, code, path .. ": " .. cli.describe(code, out, err))
        assert_messages(err)
        assert.is_true(contains(err, path), err)
      end
      assert.is_false(helper.exists(dir .. "/ran"))
    end)

    it("is loaded only by the commands that use it", function()
      local missing = dir .. "/missing.conf.lua"
      check(66, s:run({"--config", missing, "status", "m"}))
      local code, out, err = s:run({"write", dir .. "/out"}, {stdin = "x\n", env = {PORTALOCK_CONFIG = missing}})
      check(0, code, out, err)
      check(0, s:run({"--config", missing, "lock", "--help"}))
      check(64, s:run({"--config=", "status", "m"}))
    end)

    it("is read only from --config or $PORTALOCK_CONFIG, not from ./portalock.lua", function()
      helper.write(dir .. "/portalock.lua", "this is not a config\n")
      check(0, s:run({"lock", "-n", file, "--", "true"}))
    end)
  end)
end)
