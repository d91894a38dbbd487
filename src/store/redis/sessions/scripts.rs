//! The Lua scripts of the Redis session store: each decision that reads and writes a user's
//! sessions or tokens runs as one of them, atomically on the server, and names every key it
//! touches in `KEYS[]`, all under the user's hash tag, so it runs on one node of a cluster too.

use std::sync::LazyLock;

use redis::Script;

/// KEYS[1]: the user's sessions, KEYS[2]: the first refresh token. ARGV: session id, session
/// (JSON), now, expires at, cap. Expired sessions leave the hash; past the cap the oldest live
/// ones end. The hash holds at most the cap plus what expired since the last login, so the walk
/// is bounded. Returns how many live sessions it ended.
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, cap = tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'session', ARGV[1], 'issued_at', ARGV[3], 'expires_at', ARGV[4])
redis.call('PEXPIREAT', KEYS[2], ARGV[4])
local live, latest = {}, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local s = cjson.decode(all[i + 1])
  if s.expires_at <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live[#live + 1] = {s.created_at, all[i]}
    if s.expires_at > latest then latest = s.expires_at end
  end
end
local ended = 0
if #live > cap then
  table.sort(live, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  for i = 1, #live - cap do
    redis.call('HDEL', KEYS[1], live[i][2])
    ended = ended + 1
  end
end
if latest > 0 then redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', latest)) end
return ended
",
    )
});

/// KEYS[1]: the presented token, KEYS[2]: its successor, KEYS[3]: the user's sessions. ARGV:
/// now, new expiry, grace (ms), the successor's hash. The new expiry never passes the session's
/// absolute end. A reuse outside the grace ends the session.
pub(super) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, exp, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('HMGET', KEYS[1], 'session', 'expires_at', 'rotated_at', 'successor')
if not t[1] then return {'invalid'} end
local sid = t[1]
local raw = redis.call('HGET', KEYS[3], sid)
if not raw then return {'invalid'} end
local s = cjson.decode(raw)
if s.expires_at <= now then return {'invalid'} end
if not t[3] then
  if tonumber(t[2]) <= now then return {'invalid'} end
  if s.ends_at < exp then exp = s.ends_at end
  local e = string.format('%.0f', exp)
  redis.call('HSET', KEYS[1], 'rotated_at', ARGV[1], 'successor', ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], e)
  redis.call('HSET', KEYS[2], 'session', sid, 'issued_at', ARGV[1], 'expires_at', e)
  redis.call('PEXPIREAT', KEYS[2], e)
  s.last_used_at, s.expires_at = now, exp
  redis.call('HSET', KEYS[3], sid, cjson.encode(s))
  if redis.call('PTTL', KEYS[3]) < exp - now then redis.call('PEXPIREAT', KEYS[3], e) end
  return {'rotated', sid, s.amr or '', string.format('%.0f', s.created_at)}
end
if grace > 0 and now - tonumber(t[3]) < grace and t[4] == ARGV[4] then
  local n = redis.call('HMGET', KEYS[2], 'session', 'rotated_at')
  if n[1] and not n[2] then return {'grace', sid, s.amr or '', string.format('%.0f', s.created_at)} end
end
redis.call('HDEL', KEYS[3], sid)
return {'reused', sid}
",
    )
});

/// KEYS[1]: the user's sessions. ARGV: session id, now. Returns 1 if it ended a live session.
pub(super) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if cjson.decode(raw).expires_at > tonumber(ARGV[2]) then return 1 end
return 0
",
    )
});

/// KEYS[1]: the user's sessions. ARGV: the session to keep (or ''), now. Returns how many live
/// sessions it ended; bounded by the hash, which the session cap bounds.
pub(super) static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, revoked = tonumber(ARGV[2]), 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    if cjson.decode(all[i + 1]).expires_at > now then revoked = revoked + 1 end
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return revoked
",
    )
});

/// KEYS[1]: the user's sessions. ARGV: now. Returns how many of them are live; read-only, and
/// bounded by the hash, which the session cap bounds.
pub(super) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, live = tonumber(ARGV[1]), 0
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  if cjson.decode(raw).expires_at > now then live = live + 1 end
end
return live
",
    )
});
