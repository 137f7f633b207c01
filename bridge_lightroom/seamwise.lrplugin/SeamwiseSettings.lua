--[[
Export settings: the fields kept in export presets, their validation, and the job parameters
they become (the query string of `POST /v1/jobs`, protocol section 5).

Tokens are not preset fields: presets get shared between machines, a token belongs to this one.
They live in the plugin's preferences, one per server address.
]]

local LrPrefs = import 'LrPrefs'

local Settings = {}

Settings.defaultAddress = 'http://127.0.0.1:7821'

Settings.modes = { 'refine', 'upscale' }
Settings.strategies = { 'memory', 'mixture', 'multidiffusion', 'spot', 'naive' }

Settings.presetFields = {
	{ key = 'seamwise_address', default = Settings.defaultAddress },
	{ key = 'seamwise_mode', default = 'refine' },
	-- true: leave strength and steps to the server's model (GET /v1/health "recommended": the
	-- bundled model restores in 1 step as well as in 8); the two fields below apply when false
	{ key = 'seamwise_modelDefaults', default = true },
	{ key = 'seamwise_strength', default = 0.35 },
	{ key = 'seamwise_steps', default = 8 },
	{ key = 'seamwise_seed', default = 0 },
	{ key = 'seamwise_strategy', default = 'memory' },
	{ key = 'seamwise_addToCatalog', default = false },
}

--- How the export paces itself. Seconds unless named otherwise.
Settings.timing = {
	pollInterval = 0.25,     -- between GET /v1/jobs/{id}
	retryInterval = 1,       -- between attempts after a dropped connection
	reconnectWindow = 120,   -- how long a server may stay unreachable before a photo fails
	busyWindow = 600,        -- how long to keep offering an upload to a full queue (503 busy)
	uploadTimeout = 600,     -- per phase of one LrHttp call carrying a whole image
	requestTimeout = 30,     -- per phase of one small request
	rangeBytes = 8 * 1024 * 1024, -- one Range request of the result download: all it holds at once
}

local function contains(list, value)
	for _, item in ipairs(list) do
		if item == value then return true end
	end
	return false
end

local function isInteger(value)
	return type(value) == 'number' and value == math.floor(value)
end

--- Normalises a server address; returns nil and a message when it is not an http(s) URL.
function Settings.normaliseAddress(address)
	address = tostring(address or ''):gsub('^%s+', ''):gsub('%s+$', ''):gsub('/+$', '')
	if not address:match('^https?://[%w%.%-%[%]:]+$') then
		return nil, 'The server address must look like ' .. Settings.defaultAddress .. '.'
	end
	return address
end

--- Reads and checks the export settings. Returns a settings table, or nil and a message that
--- names the bad field.
function Settings.fromProperties(props)
	local address, message = Settings.normaliseAddress(props.seamwise_address)
	if not address then return nil, message end
	local mode = props.seamwise_mode
	if not contains(Settings.modes, mode) then
		return nil, 'Mode must be refine or upscale, not ' .. tostring(mode) .. '.'
	end
	local strategy = props.seamwise_strategy
	if not contains(Settings.strategies, strategy) then
		return nil, 'Unknown strategy ' .. tostring(strategy) .. '.'
	end
	local modelDefaults = props.seamwise_modelDefaults ~= false
	local strength, steps
	if not modelDefaults then
		strength = tonumber(props.seamwise_strength)
		if not strength or strength < 0 or strength > 1 then
			return nil, 'Strength must be between 0 and 1.'
		end
		steps = tonumber(props.seamwise_steps)
		if not isInteger(steps) or steps < 1 or steps > 200 then
			return nil, 'Steps must be a whole number from 1 to 200.'
		end
	end
	local seed = tonumber(props.seamwise_seed)
	if not isInteger(seed) or seed < 0 or seed > 4294967295 then
		return nil, 'Seed must be a whole number from 0 to 4294967295.'
	end
	return {
		address = address,
		mode = mode,
		scale = mode == 'upscale' and 2 or 1,
		strength = strength,
		steps = steps,
		seed = seed,
		strategy = strategy,
		addToCatalog = props.seamwise_addToCatalog == true,
	}
end

local function urlEncode(text)
	return (tostring(text):gsub('[^%w%-%._~]', function(c) return string.format('%%%02X', c:byte()) end))
end

--- The query string of POST /v1/jobs for these settings, in a fixed order.
function Settings.jobQuery(settings)
	local fields = { { 'mode', settings.mode }, { 'scale', string.format('%d', settings.scale) } }
	if settings.strength then -- else the server's model recommends them
		fields[#fields + 1] = { 'strength', string.format('%.4g', settings.strength) }
		fields[#fields + 1] = { 'steps', string.format('%d', settings.steps) }
	end
	fields[#fields + 1] = { 'seed', string.format('%.0f', settings.seed) } -- %d: 32 bits on Windows
	fields[#fields + 1] = { 'strategy', settings.strategy }
	local parts = {}
	for i, field in ipairs(fields) do parts[i] = field[1] .. '=' .. urlEncode(field[2]) end
	return table.concat(parts, '&')
end

--- The token paired with this server address, or nil.
function Settings.tokenFor(address)
	local tokens = LrPrefs.prefsForPlugin().tokens
	return tokens and tokens[address] or nil
end

--- Keeps a token for a server address (nil forgets it). Preferences only persist assignments
--- to their own fields, so the table is copied and assigned whole.
function Settings.setToken(address, token)
	local prefs = LrPrefs.prefsForPlugin()
	local tokens = {}
	for key, value in pairs(prefs.tokens or {}) do tokens[key] = value end
	tokens[address] = token
	prefs.tokens = tokens
end

return Settings
