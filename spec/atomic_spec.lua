local portalock = require "portalock"
local helper = require "spec.support.helper"
local testhelper = require "portalock_testhelper"

-- open_atomic: nothing is published without commit(); readers see old or new, never a mix.
describe("open_atomic", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/target.txt"
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  -- Names in `dir` that look like our temporaries.
  local function temporaries()
    local found = {}
    local pipe = assert(io.popen("ls -A " .. helper.quote(dir)))
    for name in pipe:lines() do
      if name:find(".portalock-", 1, true) then
        found[#found + 1] = name
      end
    end
    pipe:close()
    return found
  end

  local function mode_of(file)
    local out = helper.capture("stat -c %a " .. helper.quote(file))
    return out:match("%d+")
  end

  local function raises(expected, fn, ...)
    local ok, message = pcall(fn, ...)
    assert.is_false(ok, "no error raised")
    message = tostring(message)
    for _, fragment in ipairs(expected) do
      assert.is_truthy(message:find(fragment, 1, true), "'" .. fragment .. "' not in: " .. message)
    end
  end

  describe("commit and abort", function()
    it("writes into a 0600 temporary and publishes only on commit", function()
      helper.write(path, "old")
      local h = assert(portalock.open_atomic(path))
      local temp = h:temp_path()
      local name = temp:match("^" .. dir:gsub("%p", "%%%0") .. "/(.*)$")
      assert.is_truthy(name, temp)
      assert.is_truthy(name:match("^%.target%.txt%.portalock%-" .. ("%x"):rep(16) .. "%.tmp$"), name)
      assert.are.equal("600", mode_of(temp))
      assert.are.equal(h, h:write("new ", 42, " ", 1.5))
      assert.are.equal(h, h:flush())
      assert.are.equal("old", helper.read(path))
      assert.are.equal(10, h:seek())
      assert.are.equal(10, h:seek("end"))
      assert.are.equal(0, h:seek("set"))
      h:write("NEW")
      assert.are.equal(3, h:seek("cur"))
      assert.is_true(h:commit())
      assert.are.equal("NEW 42 1.5", helper.read(path))
      assert.are.same({}, temporaries())
      assert.are.equal("closed", h:state())
      assert.is_nil(h:temp_path())
      assert.is_true(h:abort()) -- a no-op once committed
    end)

    it("abort() leaves the target untouched and removes the temporary", function()
      helper.write(path, "old")
      local h = assert(portalock.open_atomic(path, {binary = true}))
      h:write(string.rep("x", 100000))
      assert.is_true(h:abort())
      assert.is_true(h:abort())
      assert.are.equal("old", helper.read(path))
      assert.are.same({}, temporaries())
      raises({"already committed or aborted"}, function() h:commit() end)
    end)

    it("collection of an uncommitted handle removes the temporary", function()
      local h = assert(portalock.open_atomic(path))
      h:write("never published")
      assert.are.equal(1, #temporaries())
      h = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.are.same({}, temporaries())
      assert.is_false(helper.exists(path))
    end)

    it("__close aborts an uncommitted handle on normal exit, early return and error (Lua 5.4)", function()
      if _VERSION ~= "Lua 5.4" then
        return
      end
      local chunk = assert(load([[
        local portalock, path, how = ...
        local h <close> = assert(portalock.open_atomic(path))
        h:write("in the block")
        if how == "return" then return "returned" end
        if how == "error" then error("boom") end
        if how == "commit" then assert(h:commit()) end
        return "done"
      ]]))
      helper.write(path, "old")
      assert.are.equal("done", chunk(portalock, path, "normal"))
      assert.are.equal("returned", chunk(portalock, path, "return"))
      assert.is_false((pcall(chunk, portalock, path, "error")))
      assert.are.equal("old", helper.read(path))
      assert.are.same({}, temporaries())
      chunk(portalock, path, "commit")
      assert.are.equal("in the block", helper.read(path))
      assert.are.same({}, temporaries())
    end)

    it("leaves no descriptor and no temporary behind after 500 commits and 500 aborts", function()
      local before = testhelper.fd_count()
      for i = 1, 500 do
        local h = assert(portalock.open_atomic(path))
        h:write(i)
        assert(h:commit())
        local g = assert(portalock.open_atomic(path))
        g:write("aborted")
        assert(g:abort())
      end
      assert.are.equal(before, testhelper.fd_count())
      assert.are.equal("500", helper.read(path))
      assert.are.same({}, temporaries())
    end)
  end)

  describe("modes, owners and symlinks", function()
    it("keeps an existing file's mode", function()
      helper.write(path, "old")
      os.execute("chmod 604 " .. helper.quote(path))
      local h = assert(portalock.open_atomic(path))
      h:write("new")
      assert(h:commit())
      assert.are.equal("604", mode_of(path))
    end)

    it("gives a new file what open(2) with 0666 would (0666 & ~umask)", function()
      local code = helper.run("umask 027; " .. helper.lua_command([[
        local portalock = require "portalock"
        local h = assert(portalock.open_atomic(...))
        h:write("x")
        assert(h:commit())
      ]], path))
      assert.are.equal(0, code)
      assert.are.equal("640", mode_of(path))
    end)

    it("replaces a symlink at the target instead of writing through it", function()
      local real = dir .. "/real.txt"
      helper.write(real, "real")
      os.execute("ln -s " .. helper.quote(real) .. " " .. helper.quote(path))
      local h = assert(portalock.open_atomic(path))
      h:write("replaced")
      assert(h:commit())
      assert.are.equal("real", helper.read(real))
      assert.are.equal("replaced", helper.read(path))
      assert.are.equal(0, helper.run("test -f " .. helper.quote(path) .. " && ! test -L " .. helper.quote(path)))
    end)
  end)

  describe("a target that is no regular file", function()
    local function type_of(file)
      return helper.capture("stat -c %F " .. helper.quote(file))
    end

    -- The words the message uses for a type, the command that makes one at `path`, the errno.
    local cases = {
      {"a FIFO", "mkfifo %s", 22}, -- EINVAL
      {"a directory", "mkdir %s", 21}, -- EISDIR
    }
    if helper.run("test \"$(id -u)\" = 0") == 0 then -- a device node needs root
      cases[#cases + 1] = {"a character device", "mknod -m 666 %s c 1 3", 22}
    end
    for _, case in ipairs(cases) do
      local what, make, errno = case[1], case[2], case[3]
      it("refuses " .. what .. " at open, replace or not, and leaves it as it was", function()
        assert.are.equal(0, helper.run(make:format(helper.quote(path))))
        local before = type_of(path)
        for _, replace in ipairs({true, false}) do
          local h, err = portalock.open_atomic(path, {replace = replace})
          assert.is_nil(h)
          assert.are.equal("LockException", err.kind)
          assert.are.equal(errno, err.errno)
          assert.are.equal(path, err.path)
          assert.is_truthy(err.message:find(path .. "' is " .. what, 1, true), err.message)
          assert.are.equal(before, type_of(path))
          assert.are.same({}, temporaries())
        end
      end)
    end

    it("refuses at commit one that appeared while writing, and keeps the payload", function()
      local h = assert(portalock.open_atomic(path))
      h:write("payload")
      assert.are.equal(0, helper.run("mkfifo " .. helper.quote(path)))
      local ok, err = h:commit()
      assert.is_nil(ok)
      assert.are.equal("LockException", err.kind)
      assert.are.equal(22, err.errno) -- EINVAL
      assert.is_nil(err.published)
      assert.is_truthy(err.kept)
      assert.is_truthy(err.message:find("is a FIFO", 1, true), err.message)
      assert.is_truthy(err.message:find(err.kept, 1, true), err.message)
      assert.are.equal("payload", helper.read(err.kept))
      assert.are.equal("kept", h:state())
      assert.are.equal("fifo\n", type_of(path))
    end)
  end)

  describe("replace = false", function()
    it("publishes a new file", function()
      local h = assert(portalock.open_atomic(path, {replace = false}))
      h:write("first")
      assert.is_true(h:commit())
      assert.are.equal("first", helper.read(path))
      assert.are.same({}, temporaries())
    end)

    it("never replaces an existing file and names where the payload was kept", function()
      helper.write(path, "old")
      local h = assert(portalock.open_atomic(path, {replace = false}))
      h:write("payload")
      local ok, err = h:commit()
      assert.is_nil(ok)
      assert.are.equal("LockException", err.kind)
      assert.is_true(err:is(portalock.LockException))
      assert.are.equal(17, err.errno) -- EEXIST
      assert.are.equal(path, err.path)
      assert.is_nil(err.published)
      assert.is_truthy(err.kept)
      assert.is_truthy(err.message:find(err.kept, 1, true), err.message)
      assert.are.equal("old", helper.read(path))
      assert.are.equal("payload", helper.read(err.kept))
      assert.are.equal("kept", h:state())
      h = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.are.equal("payload", helper.read(err.kept)) -- collection keeps a kept payload
    end)

    it("never replaces a file that appears while writing, nor a dangling symlink", function()
      local h = assert(portalock.open_atomic(path, {replace = false}))
      h:write("mine")
      helper.write(path, "theirs")
      local ok, err = h:commit()
      assert.is_nil(ok)
      assert.are.equal(17, err.errno)
      assert.are.equal("theirs", helper.read(path))
      os.remove(err.kept)

      local link = dir .. "/dangling"
      os.execute("ln -s " .. helper.quote(dir .. "/nowhere") .. " " .. helper.quote(link))
      h = assert(portalock.open_atomic(link, {replace = false}))
      h:write("mine")
      ok, err = h:commit()
      assert.is_nil(ok)
      assert.are.equal(17, err.errno)
      assert.is_false(helper.exists(dir .. "/nowhere"))
    end)
  end)

  describe("a failed write poisons the handle", function()
    -- Writes past a file size limit fail with EFBIG (SIGXFSZ ignored, inherited across exec).
    local function run_limited(code)
      return helper.capture("trap '' XFSZ; ulimit -f 1; " .. helper.lua_command(code, path))
    end

    it("commit then aborts, returns nil, err and publishes nothing", function()
      helper.write(path, "old")
      local out, code = run_limited([[
        local portalock = require "portalock"
        local h = assert(portalock.open_atomic(...))
        local ok, err = h:write(string.rep("x", 100000))
        assert(ok == nil and err.kind == "LockException" and err.errno == 27, tostring(err))
        assert(select(2, h:state()) == true)
        local ok1, err1 = h:write("small") -- would fit the buffer: must not look like success
        assert(ok1 == nil and err1.message:find("earlier write failed"), tostring(err1))
        local ok3, err3 = h:flush()
        assert(ok3 == nil and err3.path == h:temp_path(), tostring(err3))
        local ok2, err2 = h:commit()
        assert(ok2 == nil and err2.errno == 27 and err2.message:find("nothing was published"), tostring(err2))
        assert(h:state() == "closed" and h:temp_path() == nil)
        print("poisoned ok")
      ]])
      assert.are.equal(0, code, out)
      assert.is_truthy(out:find("poisoned ok", 1, true), out)
      assert.are.equal("old", helper.read(path))
      assert.are.same({}, temporaries())
    end)

    it("also when the failure shows only when the buffer is written out at commit", function()
      helper.write(path, "old")
      local out, code = run_limited([[
        local portalock = require "portalock"
        local h = assert(portalock.open_atomic(...))
        for _ = 1, 300 do assert(h:write("0123456789")) end -- 3000 bytes: buffered, past the limit
        local ok, err = h:commit()
        assert(ok == nil and err.errno == 27, tostring(err))
        print("poisoned ok")
      ]])
      assert.are.equal(0, code, out)
      assert.are.equal("old", helper.read(path))
      assert.are.same({}, temporaries())
    end)
  end)

  describe("fork", function()
    it("a child's copy of the handle never removes or publishes the parent's temporary", function()
      local h = assert(portalock.open_atomic(path))
      h:write("parent")
      local pid = testhelper.fork()
      if pid == 0 then
        local ok, passed = pcall(function()
          assert(h:state() == "closed")
          assert(not pcall(h.commit, h))
          assert(h:abort())
          h = nil -- luacheck: ignore 311
          collectgarbage()
          collectgarbage()
          return true
        end)
        testhelper._exit(ok and passed and 0 or 1)
      end
      assert.are.equal(0, testhelper.waitpid(pid))
      assert.are.equal(1, #temporaries())
      assert(h:commit())
      assert.are.equal("parent", helper.read(path))
    end)
  end)

  describe("writers SIGKILLed at random moments", function()
    it("200 times: a reader always sees the complete old or the complete new content", function()
      local size = 32768
      helper.write(path, string.rep("a", size))
      local stop = dir .. "/stop"
      local report = dir .. "/reader.report"

      local reader = testhelper.fork()
      if reader == 0 then
        local ok, problem = pcall(function()
          local reads, seen = 0, {}
          repeat
            local content = helper.read(path)
            if content == nil or #content ~= size then
              return "bad size " .. tostring(content and #content)
            end
            local letter = content:sub(1, 1)
            if content:find("[^" .. letter .. "]") then
              return "mixed content: " .. content:sub(1, 40)
            end
            seen[letter] = true
            reads = reads + 1
          until helper.exists(stop)
          local distinct = 0
          for _ in pairs(seen) do
            distinct = distinct + 1
          end
          return "ok " .. reads .. " " .. distinct
        end)
        helper.write(report, ok and problem or ("error " .. tostring(problem)))
        testhelper._exit(0)
      end

      math.randomseed(os.time())
      local letters = "bcdefghijklmnopqrstuvwxyz"
      local max_temporaries = 0
      for round = 1, 200 do
        local writer = testhelper.fork()
        if writer == 0 then
          local letter = letters:sub(round % #letters + 1, round % #letters + 1)
          local chunk = string.rep(letter, 4096)
          pcall(function()
            while true do
              local h = assert(portalock.open_atomic(path))
              for _ = 1, size / 4096 do
                assert(h:write(chunk))
                assert(h:flush())
              end
              assert(h:commit())
            end
          end)
          testhelper._exit(1)
        end
        if round % 20 == 0 then
          -- every 20th writer is killed only after it has committed once, so that new content
          -- is seen however slowly processes start (ASan, a loaded machine)
          local letter = letters:sub(round % #letters + 1, round % #letters + 1)
          helper.wait_until(function() return (helper.read(path) or ""):sub(1, 1) == letter end, 10)
        end
        testhelper.sleep(math.random() * 0.004)
        testhelper.kill(writer, 9)
        assert.are.equal(128 + 9, testhelper.waitpid(writer))
        local left = temporaries()
        max_temporaries = math.max(max_temporaries, #left)
        for _, name in ipairs(left) do
          os.remove(dir .. "/" .. name)
        end
      end
      helper.write(stop, "")
      assert.are.equal(0, testhelper.waitpid(reader))
      local result = helper.read(report)
      local reads, distinct = (result or ""):match("^ok (%d+) (%d+)$")
      assert.is_truthy(reads, result)
      assert.is_true(tonumber(reads) > 0)
      assert.is_true(tonumber(distinct) > 1, "no writer ever committed: " .. result)
      assert.is_true(max_temporaries <= 1, "a killed writer left " .. max_temporaries .. " temporaries")
      local final = helper.read(path)
      assert.are.equal(size, #final)
      assert.is_falsy(final:find("[^" .. final:sub(1, 1) .. "]"))
    end)
  end)

  describe("bad input", function()
    local cases = {
      {"a filename that is not a string", {"bad argument 'filename' to 'open_atomic' (42)", "string"},
        function() portalock.open_atomic(42) end},
      {"a missing filename", {"bad argument 'filename' to 'open_atomic' (nil)"},
        function() portalock.open_atomic() end},
      {"an empty filename", {"bad argument 'filename' to 'open_atomic'", "empty"},
        function() portalock.open_atomic("") end},
      {"a filename with NUL", {"bad argument 'filename' to 'open_atomic'", "NUL"},
        function() portalock.open_atomic("a\0b") end},
      {"a filename naming a directory", {"bad argument 'filename' to 'open_atomic'", "not a directory"},
        function() portalock.open_atomic("/tmp/") end},
      {"a filename ending in ..", {"bad argument 'filename' to 'open_atomic'", "not a directory"},
        function() portalock.open_atomic("/tmp/..") end},
      {"options that are not a table", {"bad argument 'opts' to 'open_atomic' (5)", "table"},
        function() portalock.open_atomic("/tmp/x", 5) end},
      {"an unknown option", {"'open_atomic'", "unknown option", '"replcae"'},
        function() portalock.open_atomic("/tmp/x", {replcae = false}) end},
      {"replace that is not a boolean", {"bad argument 'replace' to 'open_atomic' (\"no\")", "boolean"},
        function() portalock.open_atomic("/tmp/x", {replace = "no"}) end},
      {"binary that is not a boolean", {"bad argument 'binary' to 'open_atomic' (1)", "boolean"},
        function() portalock.open_atomic("/tmp/x", {binary = 1}) end},
    }
    for _, case in ipairs(cases) do
      it("raises for " .. case[1], function()
        raises(case[2], case[3])
      end)
    end

    it("raises for bad write and seek arguments and for use after commit", function()
      local h = assert(portalock.open_atomic(path))
      raises({"bad argument '#2' to 'write'", "string or a number"}, function() h:write("a", {}) end)
      raises({"bad argument 'whence' to 'seek' (\"middle\")"}, function() h:seek("middle") end)
      raises({"bad argument 'offset' to 'seek' (1.5)", "integer"}, function() h:seek("set", 1.5) end)
      assert(h:commit())
      assert.are.equal("", helper.read(path)) -- the rejected write wrote nothing
      raises({"already committed or aborted"}, function() h:write("x") end)
      raises({"already committed or aborted"}, function() h:flush() end)
      raises({"already committed or aborted"}, function() h:seek() end)
      raises({"already committed or aborted"}, function() h:commit() end)
    end)

    it("returns nil, err for a missing directory (no raise)", function()
      local h, err = portalock.open_atomic(dir .. "/missing/file")
      assert.is_nil(h)
      assert.are.equal("LockException", err.kind)
      assert.are.equal(2, err.errno) -- ENOENT
      assert.are.equal(dir .. "/missing", err.path)
      assert.is_truthy(tostring(err):find("missing", 1, true))
    end)

    it("returns nil, err for a directory that is a file (ENOTDIR)", function()
      helper.write(dir .. "/plain", "")
      local h, err = portalock.open_atomic(dir .. "/plain/file")
      assert.is_nil(h)
      assert.are.equal(20, err.errno)
    end)
  end)
end)
