--[[
HTTP client for the Seamwise server (protocol section 7), on top of LrHttp.

LrHttp only runs inside a task, so every call here must come from one. Its bodies are Lua
strings, and a 150 MP 16-bit TIFF is 900 MB: images never become one. The upload goes out with
LrHttp.postMultipart straight from the rendered file's path, and the result comes back in
ranges (Range: bytes=a-b) appended to a file. A response is summarised as a `reply`:
  { status = <HTTP status or nil>, body = <string>, data = <decoded JSON or nil>,
    headers = <LrHttp's response header list>,
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
	local result = { status = status, body = body or '', headers = responseHeaders }
	local ok, data = pcall(Json.decode, result.body)
	if ok and type(data) == 'table' then result.data = data end
	return result
end

--- One request, no retries. `body` nil means GET; `extraHeaders` are added to the usual ones.
function Client:request(method, path, body, contentType, timeout, extraHeaders)
	local url = self.address .. path
	timeout = timeout or self.timing.requestTimeout
	local headers = self:headers(contentType)
	for _, header in ipairs(extraHeaders or {}) do headers[#headers + 1] = header end
	local responseBody, responseHeaders
	if method == 'GET' then
		responseBody, responseHeaders = LrHttp.get(url, headers, timeout)
	else
		responseBody, responseHeaders = LrHttp.post(url, body or '', headers, method, timeout)
	end
	return reply(responseBody, responseHeaders)
end

--- A response header's value (names compared without case), or nil.
function Client.header(r, name)
	name = string.lower(name)
	for _, header in ipairs(r.headers or {}) do
		if type(header) == 'table' and string.lower(tostring(header.field)) == name then return header.value end
	end
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

--- Uploads the image file at `path` as the form's `image` part; LrHttp reads the file itself.
--- Returns the job id, or nil and the server's message.
function Client:submit(path, fileName, contentType, query, shouldStop)
	local busyUntil = LrDate.currentTime() + self.timing.busyWindow
	local content = { { name = 'image', fileName = fileName, filePath = path, contentType = contentType } }
	while true do
		local r = self:retrying(function()
			local body, headers = LrHttp.postMultipart(self.address .. '/v1/jobs?' .. query, content,
				self:headers(nil), self.timing.uploadTimeout)
			return reply(body, headers)
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

--- Appends `bytes` to the file at `path`. Returns true, or nil and a message.
local function append(path, bytes)
	local file, openError = io.open(path, 'ab')
	if not file then return nil, 'Cannot write the result: ' .. tostring(openError) end
	local written, writeError = file:write(bytes)
	file:close()
	if not written then return nil, 'Cannot write the result: ' .. tostring(writeError) end
	return true
end

local function fileSize(path)
	local file = io.open(path, 'rb')
	if not file then return 0 end
	local size = file:seek('end')
	file:close()
	return size
end

--- GET /v1/jobs/{id}/result into the file at `path`, one range (timing.rangeBytes) at a time,
--- so that no more than one range is ever held. A dropped connection resumes from the bytes
--- already in the file. Returns true, or nil and a message.
function Client:download(job, path, shouldStop)
	local step = self.timing.rangeBytes
	while true do
		local offset = fileSize(path)
		local range = { { field = 'Range', value = string.format('bytes=%d-%d', offset, offset + step - 1) } }
		local r = self:retrying(function()
			return self:request('GET', '/v1/jobs/' .. job .. '/result', nil, nil, self.timing.uploadTimeout, range)
		end, shouldStop)
		if r.status == 416 and offset > 0 then return true end -- the file already holds it all
		if r.status == 200 then -- a server that ignores Range sends it whole
			if offset > 0 then
				local file = io.open(path, 'wb')
				if file then file:close() end
			end
			return append(path, r.body)
		end
		if r.status ~= 206 then return nil, Client.describe(r) end
		local first, last, total = string.match(Client.header(r, 'Content-Range') or '', 'bytes (%d+)%-(%d+)/(%d+)')
		if tonumber(first) ~= offset or #r.body ~= tonumber(last) - tonumber(first) + 1 then
			return nil, 'The Seamwise server sent a range other than the one asked for.'
		end
		local written, message = append(path, r.body)
		if not written then return nil, message end
		if tonumber(last) + 1 >= tonumber(total) then return true end
	end
end

--- DELETE /v1/jobs/{id}: cancels a queued or running job, releases a finished one. Returns the
--- state the server reports, or nil and a message.
function Client:delete(job)
	local r = self:retrying(function() return self:request('DELETE', '/v1/jobs/' .. job) end)
	if r.status == 200 and r.data then return r.data.state end
	return nil, Client.describe(r)
end

Client.PROTOCOL = 1 -- the protocol this plugin speaks (PROTOCOL.md)
Client.VERSION = '0.1.0'

--- GET /v1/info: nil when the server speaks this plugin's protocol (or cannot be asked now: the
--- upload will say so), else one sentence naming the side to update.
function Client:versionProblem()
	local r = self:request('GET', '/v1/info')
	local info = r.status == 200 and r.data
	if not info or type(info.protocol) ~= 'number' or info.protocol == Client.PROTOCOL then return nil end
	local server = 'The Seamwise server ' .. tostring(info.version or '')
	if info.protocol > Client.PROTOCOL then
		return server .. ' is newer than this Lightroom plugin ' .. Client.VERSION
			.. ': update the Seamwise plugin (File > Plug-in Manager).'
	end
	return server .. ' is older than this Lightroom plugin ' .. Client.VERSION .. ': update the Seamwise server.'
end

--- GET /v1/models: the models the server found and the one in use, or nil and a message.
function Client:models()
	local r = self:request('GET', '/v1/models')
	if r.status == 200 and r.data and type(r.data.models) == 'table' then return r.data end
	return nil, Client.describe(r)
end

--- POST /v1/pair: trades a one-time code for a token. Returns the token, or nil and a message.
function Client:pair(code, name)
	local r = self:request('POST', '/v1/pair', Json.encode({ code = code, name = name }), 'application/json')
	if r.status == 200 and r.data and type(r.data.token) == 'string' then return r.data.token end
	return nil, Client.describe(r)
end

return Client
