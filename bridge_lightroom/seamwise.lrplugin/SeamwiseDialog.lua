--[[
The Seamwise section of the Export dialog (LrExportFilterProvider.sectionForFilterInDialog).

Besides the job settings it pairs the plugin with a server in LAN mode: the user types the 6-digit
code the server shows, the plugin trades it for a token (POST /v1/pair) and keeps the token in the
plugin's preferences under that server's address.
]]

local LrView = import 'LrView'
local LrTasks = import 'LrTasks'

local Settings = require 'SeamwiseSettings'
local Client = require 'SeamwiseClient'
local Models = require 'SeamwiseModels'

local bind = LrView.bind

local Dialog = {}

local function pairingState(address)
	if address and Settings.tokenFor(address) then return 'Paired with this server.' end
	return 'Not paired (not needed for a server on this computer).'
end

--- Trades the code in the dialog for a token. Runs as a task: LrHttp needs one.
function Dialog.pair(props)
	LrTasks.startAsyncTask(function()
		local address, addressError = Settings.normaliseAddress(props.seamwise_address)
		local code = tostring(props.seamwise_pairCode or ''):gsub('%s', '')
		if not address then
			props.seamwise_pairStatus = addressError
			return
		end
		if not code:match('^%d%d%d%d%d%d$') then
			props.seamwise_pairStatus = 'Type the 6-digit code the server shows.'
			return
		end
		props.seamwise_pairStatus = 'Pairing...'
		local token, message = Client.new(address, nil, Settings.timing):pair(code, 'Lightroom Classic')
		if token then
			Settings.setToken(address, token)
			props.seamwise_pairCode = ''
			props.seamwise_pairStatus = pairingState(address)
			Dialog.listModels(props) -- a LAN server lists its models to paired clients only
		else
			props.seamwise_pairStatus = 'Pairing failed: ' .. message
		end
	end, 'Seamwise pairing')
end

--- Forgets the token kept for the current address.
function Dialog.unpair(props)
	local address = Settings.normaliseAddress(props.seamwise_address)
	if address then Settings.setToken(address, nil) end
	props.seamwise_pairStatus = pairingState(address)
end

--- Lists the server's models (read-only: the server chooses its model when it starts).
--- Runs as a task: LrHttp needs one.
function Dialog.listModels(props)
	LrTasks.startAsyncTask(function()
		local address, addressError = Settings.normaliseAddress(props.seamwise_address)
		if not address then
			props.seamwise_models = addressError
			return
		end
		props.seamwise_models = 'Asking the server...'
		local answer, message = Client.new(address, Settings.tokenFor(address), Settings.timing):models()
		props.seamwise_models = answer and Models.describe(answer) or ('No model list: ' .. message)
	end, 'Seamwise models')
end

local function formatNote(format)
	if format == 'TIFF' or format == 'PNG' or format == nil then return '' end
	return 'Seamwise needs TIFF or PNG: choose one under File Settings.'
end

--- LrExportFilterProvider.sectionForFilterInDialog
function Dialog.section(f, props)
	props.seamwise_pairStatus = pairingState(Settings.normaliseAddress(props.seamwise_address))
	Dialog.listModels(props)
	local labelWidth = LrView.share('seamwise_label_width')
	local function label(title)
		return f:static_text { title = title, alignment = 'right', width = labelWidth }
	end
	-- Strength and steps are editable only when the model's recommendation is not used.
	local ownValues = bind { key = 'seamwise_modelDefaults', transform = function(value) return not value end }
	return {
		title = 'Seamwise enhance',
		f:row {
			label('Server:'),
			f:edit_field { value = bind 'seamwise_address', width_in_chars = 28, immediate = true },
		},
		f:row {
			label('Pairing code:'),
			f:edit_field { value = bind 'seamwise_pairCode', width_in_digits = 7, immediate = true },
			f:push_button { title = 'Pair', action = function() Dialog.pair(props) end },
			f:push_button { title = 'Forget', action = function() Dialog.unpair(props) end },
		},
		f:row {
			label(''),
			f:static_text { title = bind 'seamwise_pairStatus', fill_horizontal = 1 },
		},
		f:row {
			label('Models:'),
			f:static_text { title = bind 'seamwise_models', height_in_lines = 4, fill_horizontal = 1 },
			f:push_button { title = 'List models', action = function() Dialog.listModels(props) end },
		},
		f:row {
			label('Mode:'),
			f:popup_menu {
				value = bind 'seamwise_mode',
				items = { { title = 'Refine', value = 'refine' }, { title = 'Upscale ×2', value = 'upscale' } },
			},
			f:static_text { title = 'Strategy:' },
			f:popup_menu {
				value = bind 'seamwise_strategy',
				items = {
					{ title = 'Memory-linked tiles', value = 'memory' },
					{ title = 'Mixture of Diffusers', value = 'mixture' },
					{ title = 'MultiDiffusion', value = 'multidiffusion' },
					{ title = 'Shifting windows', value = 'spot' },
					{ title = 'Plain tiles', value = 'naive' },
				},
			},
		},
		f:row {
			label(''),
			f:checkbox {
				title = "Strength and steps: the model's recommendation",
				value = bind 'seamwise_modelDefaults',
			},
		},
		f:row {
			label('Strength:'),
			f:slider { value = bind 'seamwise_strength', min = 0, max = 1, fill_horizontal = 1,
				enabled = ownValues },
			f:edit_field { value = bind 'seamwise_strength', min = 0, max = 1, precision = 2, width_in_digits = 4,
				enabled = ownValues },
		},
		f:row {
			label('Steps:'),
			f:edit_field { value = bind 'seamwise_steps', min = 1, max = 200, precision = 0, width_in_digits = 4,
				enabled = ownValues },
			f:static_text { title = 'Seed:' },
			f:edit_field { value = bind 'seamwise_seed', min = 0, max = 4294967295, precision = 0, width_in_digits = 10 },
		},
		f:row {
			label(''),
			f:checkbox {
				title = 'Also add the result to the catalog, stacked above the original',
				value = bind 'seamwise_addToCatalog',
			},
		},
		f:row {
			label(''),
			f:static_text { title = bind { key = 'LR_format', transform = formatNote }, fill_horizontal = 1 },
		},
	}
end

return Dialog
