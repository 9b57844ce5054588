local portalock = require "portalock"
local helper = require "spec.support.helper"

describe("flags and the low level", function()
  local dir, path

  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/low.lock"
  end)

  after_each(function()
    helper.rmtree(dir)
  end)

  it("has flock's flag values", function()
    assert.are.same({1, 2, 4, 8},
      {portalock.LOCK_SH, portalock.LOCK_EX, portalock.LOCK_NB, portalock.LOCK_UN})
  end)

  it("maps Python's LockFlags names and the LOCK_* names", function()
    local flags = portalock.LockFlags
    assert.are.same({1, 2, 4, 8}, {flags.SHARED, flags.EXCLUSIVE, flags.NON_BLOCKING, flags.UNBLOCK})
    assert.are.same({1, 2, 4, 8}, {flags.LOCK_SH, flags.LOCK_EX, flags.LOCK_NB, flags.LOCK_UN})
  end)

  it("has a version string", function()
    assert.matches("^%d+%.%d+%.%d+", portalock._VERSION)
  end)

  it("says a failed conversion lost the lock, also on a descriptor number reused by a Lock", function()
    local other_path = dir .. "/other.lock"
    assert(io.open(other_path, "w")):close()
    assert(io.open(path, "w")):close()
    local second_holder = assert(io.open(path, "r"))
    assert(portalock.lock(second_holder, portalock.LOCK_SH))
    -- lock() on another file whose handle is then closed without unlock(): its number is free
    local closed = assert(io.open(other_path, "r+"))
    assert(portalock.lock(closed, portalock.LOCK_EX))
    closed:close()
    local lock = portalock.Lock(path, {flags = portalock.LOCK_SH, mode = "r"})
    local fh = assert(lock:acquire())
    -- flock(2) drops the shared lock when the conversion to exclusive fails
    local ok, err = portalock.lock(fh, portalock.LOCK_EX + portalock.LOCK_NB)
    assert.is_nil(ok)
    assert.is_true(err.lost)
    second_holder:close()
    lock:release()
  end)

  it("locks io handles: two exclusive locks conflict, shared ones coexist", function()
    local a = assert(io.open(path, "a"))
    local b = assert(io.open(path, "a"))
    local ex_nb = portalock.LOCK_EX + portalock.LOCK_NB
    local sh_nb = portalock.LOCK_SH + portalock.LOCK_NB
    assert.are.equal(a, portalock.lock(a, ex_nb))
    local ok, err = portalock.lock(b, ex_nb)
    assert.is_nil(ok)
    assert.are.equal("AlreadyLocked", err.kind)
    assert.is_true(portalock.unlock(a))
    assert.are.equal(a, portalock.lock(a, sh_nb))
    assert.are.equal(b, portalock.lock(b, sh_nb))
    assert.is_nil((portalock.lock(b, ex_nb)))
    a:close()
    b:close()
  end)

  it("blocks without LOCK_NB only when it must: a free file locks at once", function()
    local fh = assert(io.open(path, "a"))
    assert.are.equal(fh, portalock.lock(fh, portalock.LOCK_EX))
    assert.is_true(portalock.unlock(fh))
    fh:close()
  end)

  it("works with the ofd and posix backends", function()
    for _, backend in ipairs({"ofd", "posix"}) do
      local fh = assert(io.open(path, "r+") or io.open(path, "w+"))
      assert.are.equal(fh, portalock.lock(fh, portalock.LOCK_EX + portalock.LOCK_NB, backend))
      assert.is_true(portalock.unlock(fh, backend))
      fh:close()
    end
  end)
end)
