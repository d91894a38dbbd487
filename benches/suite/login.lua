-- POST /v1/auth/login, cycling over the accounts <prefix><i>@bench.example, i in [0, count).
-- wrk arguments: prefix, count, password. Threads start at different accounts.
local prefix, count, password, n

function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  password = args[3]
  n = (thread_id - 1) * math.floor(count / 2 + 1)
end

function request()
  n = n + 1
  local body = string.format('{"email":"%s%d@bench.example","password":"%s"}',
    prefix, n % count, password)
  return wrk.format("POST", "/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end
