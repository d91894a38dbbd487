-- POST /v1/auth/register with a new email each request: <prefix>-<thread>-<n>@bench.example.
-- wrk arguments: prefix, password.
local prefix, password, n

function init(args)
  prefix = args[1]
  password = args[2]
  n = 0
end

function request()
  n = n + 1
  local body = string.format('{"email":"%s-%d-%d@bench.example","password":"%s"}',
    prefix, thread_id, n, password)
  return wrk.format("POST", "/v1/auth/register", { ["Content-Type"] = "application/json" }, body)
end
