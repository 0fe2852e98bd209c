-- bench/wrk-list.lua: a wrk script that sends each request to a path picked
-- at random from a list, so reads and searches do not hit one cached row.
--
--   BENCH_PATHS=file   request paths, one a line ("/fhir/Patient/123")
--   BENCH_METHOD=POST  method (default GET)
--   BENCH_BODY=file    request body (sent with Content-Type application/fhir+json);
--                      file:file2:... several, each request picks one at random
--   BENCH_TOKEN=hex    session token, sent as Authorization: Bearer (run.sh signs in)
local paths = {}
local method = os.getenv("BENCH_METHOD") or "GET"
local bodies = {}
local headers = { ["Accept"] = "application/fhir+json" }

function init(args)
	local list = os.getenv("BENCH_PATHS")
	local f = assert(io.open(list, "r"), "cannot open BENCH_PATHS " .. tostring(list))
	for line in f:lines() do
		if #line > 0 then paths[#paths + 1] = line end
	end
	f:close()
	assert(#paths > 0, "no paths in " .. list)
	local bf = os.getenv("BENCH_BODY")
	for name in string.gmatch(bf or "", "[^:]+") do
		local g = assert(io.open(name, "rb"), "cannot open BENCH_BODY " .. name)
		bodies[#bodies + 1] = g:read("*a")
		g:close()
		headers["Content-Type"] = "application/fhir+json"
	end
	local tok = os.getenv("BENCH_TOKEN")
	if tok and #tok > 0 then headers["Authorization"] = "Bearer " .. tok end
	-- one seed per thread: each wrk thread has its own Lua state
	local addr = tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0
	math.randomseed(os.time() + addr % 1000003)
end

function request()
	local body = nil
	if #bodies > 0 then body = bodies[math.random(#bodies)] end
	return wrk.format(method, paths[math.random(#paths)], headers, body)
end
