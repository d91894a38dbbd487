-- POST /v1/auth/refresh along one rotation chain per thread. Refresh tokens rotate on every use
-- and a reused one revokes the whole session, so each thread (run with one connection per thread,
-- `-t N -c N`, so its requests are sequential) starts from its own login's refresh token, line
-- `thread_id` of $BENCH_DATA, and replaces it with the one each successful response carries.
local token

function init(args)
  token = read_lines(os.getenv("BENCH_DATA"))[thread_id]
end

function request()
  local body = '{"refresh_token":"' .. token .. '"}'
  return wrk.format("POST", "/v1/auth/refresh", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  count_status(status)
  if status == 200 then
    local next_token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if next_token then
      token = next_token
    end
  end
end
