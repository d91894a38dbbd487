-- GET /v1/auth/me with a bearer token, cycling over the access tokens in $BENCH_DATA (one a line).
local tokens, n

function init(args)
  tokens = read_lines(os.getenv("BENCH_DATA"))
  n = thread_id * 17
end

function request()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("GET", "/v1/auth/me", { ["Authorization"] = "Bearer " .. token })
end
