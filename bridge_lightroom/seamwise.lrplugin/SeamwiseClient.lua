--[[
HTTP client for the Seamwise server (protocol section 7), on top of LrHttp.

LrHttp bodies are whole strings and LrHttp only runs inside a task, so every call here must come
from one (LrTasks.startAsyncTask). A response is summarised as a `reply`:
  { status = <HTTP status or nil>, body = <string>, data = <decoded JSON or nil>,
    network = <LrHttp errorCode when no answer came back, else nil> }.
]]

local LrHttp = import 'LrHttp'
local LrTasks = import 'LrTasks'
local LrDate = import 'LrDate'

local Json = require 'SeamwiseJson'

local Client = {}
Client.__index = Client

--- A client for one server. `token` is the paired Bearer token, nil on loopback.
function Client.new(address, token, timing)
	return setmetatable({ address = address, token = token, timing = timing }, Client)
end

function Client:headers(contentType)
	local headers = { { field = 'X-Seamwise', value = '1' } }
	if contentType then headers[#headers + 1] = { field = 'Content-Type', value = contentType } end
	if self.token then
		headers[#headers + 1] = { field = 'Authorization', value = 'Bearer ' .. self.token }
	end
	return headers
end

local function reply(body, responseHeaders)
	local status = responseHeaders and responseHeaders.status
	if not status then
		local failure = responseHeaders and responseHeaders.error
		return { network = failure and (failure.errorCode or failure.name) or 'noResponse', body = '' }
	end
	local result = { status = status, body = body or '' }
	local ok, data = pcall(Json.decode, result.body)
	if ok and type(data) == 'table' then result.data = data end
	return result
end

--- One request, no retries. `body` nil means GET.
function Client:request(method, path, body, contentType, timeout)
	local url = self.address .. path
	timeout = timeout or self.timing.requestTimeout
	local responseBody, responseHeaders
	if method == 'GET' then
		responseBody, responseHeaders = LrHttp.get(url, self:headers(nil), timeout)
	else
		responseBody, responseHeaders = LrHttp.post(url, body or '', self:headers(contentType), method, timeout)
	end
	return reply(responseBody, responseHeaders)
end

--- The server's sentence for a failed reply (its error body when there is one).
function Client.describe(r)
	if r.network then
		return 'The Seamwise server did not answer (' .. tostring(r.network) .. ').'
	end
	local data = r.data
	if data and type(data.message) == 'string' then return data.message end
	return 'The Seamwise server answered HTTP ' .. tostring(r.status) .. '.'
end

--- Repeats `attempt` while the server is unreachable, for up to the reconnect window, so that a
--- dropped connection or a restarting server costs a wait rather than the photo. `shouldStop`
--- (optional) ends the wait early, e.g. on cancel. Returns the last reply.
function Client:retrying(attempt, shouldStop)
	local deadline = LrDate.currentTime() + self.timing.reconnectWindow
	while true do
		local r = attempt()
		if not r.network or LrDate.currentTime() >= deadline or (shouldStop and shouldStop()) then
			return r
		end
		LrTasks.sleep(self.timing.retryInterval)
	end
end

--- Uploads one image. Returns the job id, or nil and the server's message.
function Client:submit(image, contentType, query, shouldStop)
	local busyUntil = LrDate.currentTime() + self.timing.busyWindow
	while true do
		local r = self:retrying(function()
			return self:request('POST', '/v1/jobs?' .. query, image, contentType, self.timing.uploadTimeout)
		end, shouldStop)
		if r.status == 202 and r.data and type(r.data.job) == 'string' then return r.data.job end
		local busy = r.status == 503 and LrDate.currentTime() < busyUntil
		if not busy or (shouldStop and shouldStop()) then return nil, Client.describe(r) end
		LrTasks.sleep(self.timing.retryInterval)
	end
end

--- GET /v1/jobs/{id}: the job's status table, or nil and a message.
function Client:status(job, shouldStop)
	local r = self:retrying(function() return self:request('GET', '/v1/jobs/' .. job) end, shouldStop)
	if r.status == 200 and r.data then return r.data end
	return nil, Client.describe(r)
end

--- GET /v1/jobs/{id}/result: the result file's bytes, or nil and a message.
function Client:result(job, shouldStop)
	local r = self:retrying(function()
		return self:request('GET', '/v1/jobs/' .. job .. '/result', nil, nil, self.timing.uploadTimeout)
	end, shouldStop)
	if r.status == 200 then return r.body end
	return nil, Client.describe(r)
end

--- DELETE /v1/jobs/{id}: cancels a queued or running job, releases a finished one. Returns the
--- state the server reports, or nil and a message.
function Client:delete(job)
	local r = self:retrying(function() return self:request('DELETE', '/v1/jobs/' .. job) end)
	if r.status == 200 and r.data then return r.data.state end
	return nil, Client.describe(r)
end

--- POST /v1/pair: trades a one-time code for a token. Returns the token, or nil and a message.
function Client:pair(code, name)
	local r = self:request('POST', '/v1/pair', Json.encode({ code = code, name = name }), 'application/json')
	if r.status == 200 and r.data and type(r.data.token) == 'string' then return r.data.token end
	return nil, Client.describe(r)
end

return Client
