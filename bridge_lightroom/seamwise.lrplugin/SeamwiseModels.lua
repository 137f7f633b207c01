--[[
What the plugin says about the server's models (GET /v1/models) and, on a render cluster
(`seamwise serve --cluster`), about where a photo renders (`runs_on` in the job's progress).
Pure functions on the documented shapes (protocol sections 6.3 and 7), so they are tested
without a server. The server has no call to switch models: the text says how (set the default
with `seamwise models default`, then restart the server).
]]

local Models = {}

--- The model list as lines of text for the Export dialog: the model in use, each model found
--- (name and family; the default marked; unsupported ones with their note), and the restart
--- that a new default needs. `answer` is the decoded body of GET /v1/models.
function Models.describe(answer)
	if type(answer) ~= 'table' or type(answer.models) ~= 'table' then
		return 'This server does not list its models.'
	end
	local inUse = answer.in_use
	local lines = { 'In use: ' .. tostring(inUse or 'none') }
	local default
	for _, m in ipairs(answer.models) do
		local line = '  ' .. tostring(m.name or m.id or '?')
		if m.family_name and m.family_name ~= '' then line = line .. ' (' .. tostring(m.family_name) .. ')' end
		if m.default == true then
			line = line .. ', default'
			default = m
		end
		if m.supported == false then
			line = line .. ', ' .. tostring(m.note ~= '' and m.note or 'not supported')
		end
		lines[#lines + 1] = line
	end
	if default and inUse and default.name ~= inUse and default.id ~= inUse then
		lines[#lines + 1] = 'The default is ' .. tostring(default.name) .. ': restart the server to use it '
			.. '(seamwise models default ' .. tostring(default.id or default.name) .. ' sets the default).'
	end
	return table.concat(lines, '\n')
end

--- Where a photo renders on a cluster: "on BOX (ACTOR)", "retried on BOX (ACTOR), attempt N",
--- ", split across N actors" when other actors evaluate tiles of it. nil without `runs_on`.
function Models.runsOn(runsOn)
	if type(runsOn) ~= 'table' or not runsOn.actor then return nil end
	local where = tostring(runsOn.box or runsOn.node or '?') .. ' (' .. tostring(runsOn.actor) .. ')'
	local attempt = tonumber(runsOn.attempt) or 1
	local text = attempt > 1 and string.format('retried on %s, attempt %d', where, attempt) or ('on ' .. where)
	local helpers = type(runsOn.helpers) == 'table' and #runsOn.helpers or 0
	if helpers > 0 then text = text .. string.format(', split across %d actors', helpers + 1) end
	return text
end

return Models
