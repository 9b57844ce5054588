/*
 * The server side of the Redis backend: every decision (grant, renew, release, a fenced write)
 * is one of these scripts, atomic on the server and timed by its TIME. protocol.c says what
 * each one is sent and what its reply means.
 *
 * The keys of a name (KEYS, in this order, all tagged "{name}"): holders (a hash, grant ->
 * "<expires ms> <session channel> <token>"), queue (a sorted set of the waiters' channels by
 * arrival), fence (the newest token), subscribers (RedisLock: the acquisitions subscribed to
 * the channel `name`, acquisition channel -> session channel) and maximum.
 */
#include "redis.h"

/* Drops the grants whose lease has passed or whose session is gone (its subscription ended
 * with its connection), and counts the others. */
#define PL_LIVE_GRANTS                                                                             \
  "local function listeners(channel) return redis.call('PUBSUB', 'NUMSUB', channel)[2] end\n"      \
  "local function live_grants(holders, now)\n"                                                     \
  "  local held, entries = 0, redis.call('HGETALL', holders)\n"                                    \
  "  for i = 1, #entries, 2 do\n"                                                                  \
  "    local expires, session = string.match(entries[i + 1], '^(%d+) (%S+)')\n"                    \
  "    if tonumber(expires) <= now or listeners(session) == 0 then\n"                              \
  "      redis.call('HDEL', holders, entries[i])\n"                                                \
  "    else\n"                                                                                     \
  "      held = held + 1\n"                                                                        \
  "    end\n"                                                                                      \
  "  end\n"                                                                                        \
  "  return held\n"                                                                                \
  "end\n"

/* Tokens are decimal strings (no leading zero) compared and counted as such: the scripts'
 * numbers are doubles, exact only below 2^53, and a token may be any 64-bit counter. */
#define PL_TOKENS                                                                                  \
  "local function newer(a, b) return #a > #b or (#a == #b and a > b) end\n"                        \
  "local function plus_one(s)\n"                                                                   \
  "  local i = #s\n"                                                                               \
  "  while i > 0 and string.byte(s, i) == 57 do i = i - 1 end\n" /* '9' */                         \
  "  if i == 0 then return '1' .. string.rep('0', #s) end\n"                                       \
  "  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) .. "                     \
  "string.rep('0', #s - i)\n"                                                                      \
  "end\n"

/* Makes `key` last at least `ms` more (a name's keys go when nobody uses the name). */
#define PL_KEEP                                                                                    \
  "local function keep(key, ms)\n"                                                                 \
  "  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end\n"                    \
  "end\n"

/* Whether a waiter other than `grant` is still queued and listening (the others leave). */
#define PL_OTHERS_WAITING                                                                          \
  "local function others_waiting(queue, grant)\n"                                                  \
  "  for _, waiter in ipairs(redis.call('ZRANGE', queue, 0, -1)) do\n"                             \
  "    if waiter ~= grant then\n"                                                                  \
  "      if listeners(waiter) > 0 then return true end\n"                                          \
  "      redis.call('ZREM', queue, waiter)\n"                                                      \
  "    end\n"                                                                                      \
  "  end\n"                                                                                        \
  "  return false\n"                                                                               \
  "end\n"

/*
 * GRANT. ARGV: grant (the acquisition's channel), session channel, maximum, ttl ms, channel
 * `name` ("" for a semaphore), queue score ("" the first time, "-" not to queue), and "1" when
 * the acquisition is subscribed to `name` too (in the same command as to its own channel).
 * Returns {1, token}, {0, holders, foreign subscribers, score}, {-1} (the acquisition's
 * subscription has not reached the server yet) or {-2, stored maximum}.
 *
 * The maximum stored with a name binds only while the name is in use: another maximum is
 * refused while a live grant or another live waiter has it, and replaces it once none has (the
 * key outlives its holders by up to 2 ttl, and a holder that died never said it left).
 *
 * A RedisLock is also subscribed to the channel `name`, as Python portalocker's holders are:
 * subscribers of that channel that are not portalock acquisitions (each session subscribes it
 * once, however many of its acquisitions use it) are portalocker holders, and block the grant.
 * An acquisition leaves the subscribers' hash when its channel has no listener any more, not
 * with time: a paused holder is still subscribed to `name`, and must not count as portalocker's
 * when its lease has run out (the hash's own expiry only ends a name nobody uses for a day).
 */
static const char pl_script_grant[] = PL_LIVE_GRANTS PL_KEEP PL_OTHERS_WAITING PL_TOKENS
    "local holders, queue, fence, subscribers, maxkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], "
    "KEYS[5]\n"
    "local grant, session, maximum, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local channel, score, visible = ARGV[5], ARGV[6], ARGV[7] == '1'\n"
    "if listeners(grant) == 0 then return {-1} end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local held = live_grants(holders, now)\n"
    /* The maximum as the caller wrote it: a Lua number would round one above 2^53. */
    "local stored = redis.call('SET', maxkey, ARGV[3], 'KEEPTTL', 'GET')\n"
    "if stored and stored ~= ARGV[3] and (held > 0 or others_waiting(queue, grant)) then\n"
    "  redis.call('SET', maxkey, stored, 'KEEPTTL')\n"
    "  return {-2, stored}\n"
    "end\n"
    "keep(maxkey, ttl * 2)\n"
    "local foreign = 0\n"
    "if channel ~= '' then\n"
    "  if visible then\n"
    "    redis.call('HSET', subscribers, grant, session)\n"
    "    keep(subscribers, 86400000)\n"
    "  end\n"
    "  local listening = listeners(channel)\n"
    "  if listening > 0 then\n" /* (with none, none is portalocker's) */
    "    local sessions, ours, entries = {}, 0, redis.call('HGETALL', subscribers)\n"
    "    for i = 1, #entries, 2 do\n"
    "      if listeners(entries[i]) == 0 then\n"
    "        redis.call('HDEL', subscribers, entries[i])\n"
    "      elseif not sessions[entries[i + 1]] then\n"
    "        sessions[entries[i + 1]] = true\n"
    "        ours = ours + 1\n"
    "      end\n"
    "    end\n"
    "    foreign = listening - ours\n"
    "  end\n"
    "end\n"
    "if held < maximum and foreign <= 0 then\n"
    /* The token: the server's clock in microseconds, or one more than the last token when
     * that is later (grants within a microsecond, a clock set back). */
    "  local token = string.format('%.0f', t[1] * 1000000 + t[2])\n"
    "  local last = redis.call('SET', fence, token, 'PX', 86400000, 'GET')\n"
    "  if last and not newer(token, last) then\n"
    "    token = plus_one(last)\n"
    "    redis.call('SET', fence, token, 'PX', 86400000)\n"
    "  end\n"
    "  redis.call('HSET', holders, grant, string.format('%.0f %s %s', now + ttl, session, token))\n"
    "  if held == 0 then\n" /* a hash made anew */
    "    redis.call('PEXPIRE', holders, ttl * 2)\n"
    "  else\n"
    "    keep(holders, ttl * 2)\n"
    "  end\n"
    "  if score ~= '' and score ~= '-' then redis.call('ZREM', queue, grant) end\n"
    "  return {1, token}\n"
    "end\n"
    "if score == '' then score = string.format('%.0f', t[1] * 1000000 + t[2]) end\n"
    "if score ~= '-' then\n"
    "  redis.call('ZADD', queue, 'NX', score, grant)\n"
    "  keep(queue, ttl * 2)\n"
    "end\n"
    "return {0, held, foreign, score}\n";

/*
 * RELEASE. KEYS: holders, queue. ARGV: grant. Wakes the first waiter in arrival order that is
 * still listening. Returns 1, or 0 when the grant was no longer there (lost).
 */
static const char pl_script_release[] =
    "local removed = redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "while true do\n"
    "  local first = redis.call('ZPOPMIN', KEYS[2])\n"
    "  if #first == 0 or redis.call('PUBLISH', first[1], 'released') > 0 then break end\n"
    "end\n"
    "return removed\n";

/*
 * RENEW. KEYS: holders, maximum and subscribers of each grant, in threes. ARGV: ttl ms, then
 * the grants.
 * Extends each grant that is still there and unexpired; returns 1 or 0 per grant (0: lost; an
 * expired grant is removed, never revived).
 */
static const char pl_script_renew[] = PL_KEEP
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local ttl, result = tonumber(ARGV[1]), {}\n"
    "for i = 2, #ARGV do\n"
    "  local holders, grant = KEYS[3 * i - 5], ARGV[i]\n"
    "  local entry = redis.call('HGET', holders, grant)\n"
    "  local expires, session, token\n"
    "  if entry then expires, session, token = string.match(entry, '^(%d+) (%S+) (%d+)') end\n"
    "  if entry and tonumber(expires) > now then\n"
    "    redis.call('HSET', holders, grant, string.format('%.0f %s %s', now + ttl, session, "
    "token))\n"
    "    keep(holders, ttl * 2)\n"
    "    keep(KEYS[3 * i - 4], ttl * 2)\n"
    "    keep(KEYS[3 * i - 3], 86400000)\n"
    "    result[i - 1] = 1\n"
    "  else\n"
    "    if entry then redis.call('HDEL', holders, grant) end\n"
    "    result[i - 1] = 0\n"
    "  end\n"
    "end\n"
    "return result\n";

/*
 * FENCED_WRITE. KEYS: the hash to write. ARGV: token, value. Returns 1 written, 0 rejected (the
 * hash holds a newer token).
 */
static const char pl_script_fenced_write[] =
    PL_TOKENS "local stored = redis.call('HGET', KEYS[1], 'token')\n"
              "if stored and newer(stored, ARGV[1]) then return 0 end\n"
              "redis.call('HSET', KEYS[1], 'token', ARGV[1], 'value', ARGV[2])\n"
              "return 1\n";

/*
 * STATUS. KEYS: holders, queue, subscribers, maximum. ARGV: the channel `name`. Changes
 * nothing: returns {stored maximum or "", live waiters, foreign subscribers of `name`, {session,
 * token, lease ms left, ...} of the live grants}, counted as GRANT counts them.
 */
static const char pl_script_status[] =
    "local function listeners(channel) return redis.call('PUBSUB', 'NUMSUB', channel)[2] end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local grants, entries = {}, redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #entries, 2 do\n"
    "  local expires, session, token = string.match(entries[i + 1], '^(%d+) (%S+) (%d+)')\n"
    "  if tonumber(expires) > now and listeners(session) > 0 then\n"
    "    grants[#grants + 1] = session\n"
    "    grants[#grants + 1] = token\n"
    "    grants[#grants + 1] = tonumber(expires) - now\n"
    "  end\n"
    "end\n"
    "local waiting = 0\n"
    "for _, waiter in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "  if listeners(waiter) > 0 then waiting = waiting + 1 end\n"
    "end\n"
    "local foreign, listening = 0, listeners(ARGV[1])\n"
    "if listening > 0 then\n"
    "  local sessions, ours = {}, 0\n"
    "  entries = redis.call('HGETALL', KEYS[3])\n"
    "  for i = 1, #entries, 2 do\n"
    "    if listeners(entries[i]) > 0 and not sessions[entries[i + 1]] then\n"
    "      sessions[entries[i + 1]] = true\n"
    "      ours = ours + 1\n"
    "    end\n"
    "  end\n"
    "  foreign = listening - ours\n"
    "end\n"
    "return {redis.call('GET', KEYS[4]) or '', waiting, foreign, grants}\n";

const char *const pl_redis_scripts[PL_SCRIPT_COUNT] = {
    [PL_SCRIPT_GRANT] = pl_script_grant,   [PL_SCRIPT_RELEASE] = pl_script_release,
    [PL_SCRIPT_RENEW] = pl_script_renew,   [PL_SCRIPT_FENCED_WRITE] = pl_script_fenced_write,
    [PL_SCRIPT_STATUS] = pl_script_status,
};
