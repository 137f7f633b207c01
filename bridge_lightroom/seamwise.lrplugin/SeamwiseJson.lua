--[[
Minimal JSON for the server's small control bodies (job status, errors, pairing).

Lightroom's Lua 5.1 has no JSON library. Objects decode to tables, arrays to sequences, `null` to
nil (so a missing field and a null field read the same, which is what the protocol means by
"or nil"). Image bytes never pass through here.
]]

local Json = {}

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
	['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function encodeString(s)
	return '"' .. s:gsub('[%c"\\]', function(c)
		return escapes[c] or string.format('\\u%04x', c:byte())
	end) .. '"'
end

--- Encodes strings, numbers, booleans and flat or nested tables with string keys.
function Json.encode(value)
	local kind = type(value)
	if kind == 'string' then
		return encodeString(value)
	elseif kind == 'number' then
		if value ~= value or value == math.huge or value == -math.huge then
			error('JSON cannot hold ' .. tostring(value))
		end
		if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
			return string.format('%.0f', value) -- %d goes through a C long: 32 bits on Windows
		end
		return string.format('%.17g', value)
	elseif kind == 'boolean' then
		return tostring(value)
	elseif kind == 'table' then
		if #value > 0 then
			local items = {}
			for i = 1, #value do items[i] = Json.encode(value[i]) end
			return '[' .. table.concat(items, ',') .. ']'
		end
		local keys = {}
		for key in pairs(value) do keys[#keys + 1] = tostring(key) end
		table.sort(keys)
		local items = {}
		for i, key in ipairs(keys) do items[i] = encodeString(key) .. ':' .. Json.encode(value[key]) end
		return '{' .. table.concat(items, ',') .. '}'
	end
	error('JSON cannot hold a ' .. kind)
end

local function utf8Char(code)
	if code < 0x80 then return string.char(code) end
	if code < 0x800 then
		return string.char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
	end
	if code < 0x10000 then
		return string.char(0xE0 + math.floor(code / 0x1000), 0x80 + math.floor(code / 0x40) % 0x40,
			0x80 + code % 0x40)
	end
	return string.char(0xF0 + math.floor(code / 0x40000), 0x80 + math.floor(code / 0x1000) % 0x40,
		0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
end

local simpleUnescapes = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n',
	r = '\r', t = '\t' }

local decodeValue

local function skipSpace(text, pos)
	return text:find('[^ \t\r\n]', pos) or #text + 1
end

local function fail(text, pos, what)
	error(string.format('bad JSON at byte %d: %s', pos, what), 0)
end

local function decodeString(text, pos)
	local parts = {}
	local i = pos + 1
	while true do
		local stop = text:find('["\\]', i)
		if not stop then fail(text, pos, 'unterminated string') end
		parts[#parts + 1] = text:sub(i, stop - 1)
		if text:sub(stop, stop) == '"' then
			return table.concat(parts), stop + 1
		end
		local esc = text:sub(stop + 1, stop + 1)
		if esc == 'u' then
			local hex = text:sub(stop + 2, stop + 5)
			if not hex:match('^%x%x%x%x$') then fail(text, stop, 'bad \\u escape') end
			local code = tonumber(hex, 16)
			local nextPos = stop + 6
			if code >= 0xD800 and code < 0xDC00 and text:sub(nextPos, nextPos + 1) == '\\u' then
				local low = tonumber(text:sub(nextPos + 2, nextPos + 5), 16)
				if low and low >= 0xDC00 and low < 0xE000 then
					code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
					nextPos = nextPos + 6
				end
			end
			parts[#parts + 1] = utf8Char(code)
			i = nextPos
		elseif simpleUnescapes[esc] then
			parts[#parts + 1] = simpleUnescapes[esc]
			i = stop + 2
		else
			fail(text, stop, 'bad escape')
		end
	end
end

local function decodeArray(text, pos)
	local result, n = {}, 0
	pos = skipSpace(text, pos + 1)
	if text:sub(pos, pos) == ']' then return result, pos + 1 end
	while true do
		local value
		value, pos = decodeValue(text, pos)
		n = n + 1
		result[n] = value
		pos = skipSpace(text, pos)
		local c = text:sub(pos, pos)
		if c == ']' then return result, pos + 1 end
		if c ~= ',' then fail(text, pos, "expected ',' or ']'") end
		pos = skipSpace(text, pos + 1)
	end
end

local function decodeObject(text, pos)
	local result = {}
	pos = skipSpace(text, pos + 1)
	if text:sub(pos, pos) == '}' then return result, pos + 1 end
	while true do
		if text:sub(pos, pos) ~= '"' then fail(text, pos, 'expected a key') end
		local key, value
		key, pos = decodeString(text, pos)
		pos = skipSpace(text, pos)
		if text:sub(pos, pos) ~= ':' then fail(text, pos, "expected ':'") end
		value, pos = decodeValue(text, skipSpace(text, pos + 1))
		result[key] = value
		pos = skipSpace(text, pos)
		local c = text:sub(pos, pos)
		if c == '}' then return result, pos + 1 end
		if c ~= ',' then fail(text, pos, "expected ',' or '}'") end
		pos = skipSpace(text, pos + 1)
	end
end

local literals = { ['true'] = true, ['false'] = false }

decodeValue = function(text, pos)
	pos = skipSpace(text, pos)
	local c = text:sub(pos, pos)
	if c == '{' then return decodeObject(text, pos) end
	if c == '[' then return decodeArray(text, pos) end
	if c == '"' then return decodeString(text, pos) end
	local number = text:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
	if number and number ~= '' and number ~= '-' then
		local value = tonumber(number)
		if value == nil then fail(text, pos, 'bad number') end
		return value, pos + #number
	end
	for word, value in pairs(literals) do
		if text:sub(pos, pos + #word - 1) == word then return value, pos + #word end
	end
	if text:sub(pos, pos + 3) == 'null' then return nil, pos + 4 end
	fail(text, pos, 'unexpected ' .. (c == '' and 'end of text' or ("'" .. c .. "'")))
end

--- Decodes one JSON value; raises an error (a string) for anything that is not exactly that.
function Json.decode(text)
	local value, pos = decodeValue(text, 1)
	pos = skipSpace(text, pos)
	if pos <= #text then fail(text, pos, 'trailing characters') end
	return value
end

return Json
