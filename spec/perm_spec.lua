-- perm: what root creates with opts.perm, another user's processes can use, whatever root's
-- umask (an nginx master's lock files and semaphores, made in init_by_lua, and its workers);
-- without it, the other user's acquire is a LockException naming the file, its owner and mode,
-- the user and what to change. Root plays the master and nobody a worker (setpriv), each in a
-- process of its own; not root, there is no other user to play.
local portalock = require "portalock"
local core = require "portalock.core"
local helper = require "spec.support.helper"

describe("perm for processes of another user", function()
  local is_root = helper.run("test \"$(id -u)\" = 0") == 0
  local AS_NOBODY = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
  local dir, shared, semaphores

  before_each(function()
    dir = helper.tmpdir()
    semaphores = {}
    -- a directory everyone may create files in, sticky as /tmp is
    shared = dir .. "/shared"
    assert.are.equal(0, helper.run("chmod 711 " .. helper.quote(dir) .. " && mkdir -m 1777 "
      .. helper.quote(shared)))
  end)

  after_each(function()
    for _, name in ipairs(semaphores) do
      pcall(portalock.Semaphore.unlink, name)
    end
    helper.rmtree(dir)
  end)

  -- Acquires (one attempt) and releases a `kind` on `target` (a Lock's file, a bounded
  -- semaphore's directory, a Semaphore's name) with option perm (octal digits, "" for none):
  -- prints "acquired", or the error's kind, errno and message.
  local ACQUIRE = [[
local kind, target, perm = ...
local portalock = require "portalock"
perm = perm ~= "" and tonumber(perm, 8) or nil
local object, ok, err
if kind == "Lock" then
  object = portalock.Lock(target, {perm = perm, timeout = 0})
  ok, err = object:acquire()
elseif kind == "NamedBoundedSemaphore" then
  object = portalock.NamedBoundedSemaphore(1, {directory = target, name = "slots", perm = perm,
    timeout = 0})
  ok, err = object:acquire()
else
  object = portalock.Semaphore(1, {name = target, perm = perm})
  ok, err = object:acquire({block = false})
end
if ok then
  object:release()
  print("acquired")
else
  print(err.kind .. " " .. err.errno .. ": " .. err.message)
end
]]

  -- Runs ACQUIRE as root under `umask`, then as nobody (with `perm_here`): nobody's output.
  local function made_by_root_then_used_by_nobody(kind, target, umask, perm, perm_here)
    local output = helper.capture("umask " .. umask .. " && " .. helper.lua_command(ACQUIRE, kind,
      target, perm or ""))
    assert.are.equal("acquired\n", output)
    return helper.capture(AS_NOBODY .. helper.lua_command(ACQUIRE, kind, target, perm_here or ""))
  end

  local function mode_of(path)
    return helper.capture("stat -c %a " .. helper.quote(path))
  end

  -- nobody's refusal names root's file, its mode, nobody and what to change.
  local function assert_explained(output, path, mode, remedy)
    local uid = helper.capture("id -u nobody"):gsub("\n", "")
    local function has(part)
      assert(output:find(part, 1, true), "lacks \"" .. part .. "\": " .. output)
    end
    has("LockException " .. core.ERRNO.EACCES .. ": ")
    has("'" .. path .. "': Permission denied: owned by root (uid 0), mode " .. mode)
    has("this process runs as nobody (uid " .. uid .. ")")
    has(remedy)
    has("an existing file keeps its mode: chown it to nobody or chmod it 0666")
  end

  local function need_root()
    if not is_root then
      pending("needs root, to create files that the user nobody then meets")
    end
    return is_root
  end

  describe("Lock", function()
    it("made with perm 0666 under umask 022 is 0666, and nobody locks it", function()
      if not need_root() then return end
      local path = shared .. "/open.lock"
      assert.are.equal("acquired\n", made_by_root_then_used_by_nobody("Lock", path, "022", "666"))
      assert.are.equal("666\n", mode_of(path))
    end)

    it("made without perm is 0644 under umask 022: nobody is told what to change", function()
      if not need_root() then return end
      local path = shared .. "/private.lock"
      local output = made_by_root_then_used_by_nobody("Lock", path, "022")
      assert.are.equal("644\n", mode_of(path))
      assert_explained(output, path, "0644",
        "remove it so that it is created again with option perm 0666 (438 in decimal)")
    end)
  end)

  describe("NamedBoundedSemaphore", function()
    -- Slot files are opened read-only, so a 0644 one lets nobody in: umask 077 keeps it out.
    it("makes its slot files with perm 0666 under umask 077, and nobody takes a slot", function()
      if not need_root() then return end
      assert.are.equal("acquired\n",
        made_by_root_then_used_by_nobody("NamedBoundedSemaphore", shared, "077", "666"))
      assert.are.equal("666\n", mode_of(shared .. "/slots.00.lock"))
    end)

    it("made without perm under umask 077: nobody is told what to change", function()
      if not need_root() then return end
      local output = made_by_root_then_used_by_nobody("NamedBoundedSemaphore", shared, "077")
      assert.are.equal("600\n", mode_of(shared .. "/slots.00.lock"))
      assert.matches("none of its 1 slot files can be used", output)
      assert_explained(output, shared .. "/slots.00.lock", "0600",
        "remove it so that it is created again with option perm 0666 (438 in decimal)")
    end)
  end)

  describe("Semaphore", function()
    local function fresh(tag)
      local name = string.format("spec.%d.perm.%s", core.getpid(), tag)
      pcall(portalock.Semaphore.unlink, name)
      semaphores[#semaphores + 1] = name
      return name
    end

    it("made with perm 0666 under umask 022 is 0666, and nobody with that perm acquires", function()
      if not need_root() then return end
      local name = fresh("shared")
      assert.are.equal("acquired\n",
        made_by_root_then_used_by_nobody("Semaphore", name, "022", "666", "666"))
      assert.are.equal("666\n", mode_of("/dev/shm/sem.portalock." .. name))
    end)

    it("made with the default perm (0600): nobody is told what to change", function()
      if not need_root() then return end
      local name = fresh("private")
      local output = made_by_root_then_used_by_nobody("Semaphore", name, "022", nil, "666")
      assert.are.equal("600\n", mode_of("/dev/shm/sem.portalock." .. name))
      assert_explained(output, "/dev/shm/sem.portalock." .. name, "0600",
        "remove it so that it is created again with option perm 0666 (438 in decimal), and the same perm here")
    end)
  end)
end)
