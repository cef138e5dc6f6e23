-- wrk script: POSTs pre-signed, distinct Zof events (one per line of $ZOFHOOK_LOAD_FILE:
-- "<signature>\t<body>"), each thread taking its own share so no id is sent twice.
local threads, counter = {}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  sigs, bodies = {}, {}
  for line in io.lines(os.getenv("ZOFHOOK_LOAD_FILE")) do
    local sig, body = line:match("^([^\t]*)\t(.*)$")
    sigs[#sigs + 1] = sig
    bodies[#bodies + 1] = body
  end
  step = tonumber(os.getenv("ZOFHOOK_LOAD_THREADS") or "1")
  first = (tid % #bodies) + 1
  i = first
end

function request()
  local n = i
  i = i + step
  if i > #bodies then i = first end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json", ["Zof-Signature"] = sigs[n] }, bodies[n])
end
