--[[
Stand-ins for the Lightroom Classic SDK modules the plugin imports, written against Adobe's
documented behaviour. Everything that touches the outside world (HTTP, files, clocks) is done by
Python through the `py` table; this file keeps the parts that must be Lua: cooperative tasks as
coroutines, and the tables Lightroom hands to a plugin.

Loaded with `py` (Python callbacks) as its only argument; returns the `import` function and the
scheduler.
]]

local py = ...

local modules = {}

-- LrTasks: cooperative tasks. Lightroom runs plugin code in tasks; LrHttp, sleep and yield only
-- work inside one. A task here is a coroutine; the scheduler resumes those whose wake time has come.
local Scheduler = { tasks = {}, taskCoroutines = setmetatable({}, { __mode = 'k' }) }

local function inTask()
	local co = coroutine.running()
	return co ~= nil and Scheduler.taskCoroutines[co] == true
end

local function requireTask(what)
	if not inTask() then error(what .. ' must be called from within a task (LrTasks.startAsyncTask)', 3) end
end

local LrTasks = {}
modules.LrTasks = LrTasks

function LrTasks.startAsyncTask(fn, name)
	local co = coroutine.create(fn)
	Scheduler.taskCoroutines[co] = true
	table.insert(Scheduler.tasks, { co = co, name = name or 'task', wake = 0 })
end

function LrTasks.canYield() return inTask() end

function LrTasks.sleep(seconds)
	requireTask('LrTasks.sleep')
	coroutine.yield(py.monotonic() + math.max(seconds or 0, 0))
end

function LrTasks.yield()
	requireTask('LrTasks.yield')
	coroutine.yield(0)
end

-- Lua 5.1's pcall cannot yield across; Lightroom's LrTasks.pcall can. Run the function in its own
-- coroutine and pass its yields on to the task's scheduler.
function LrTasks.pcall(fn, ...)
	local co = coroutine.create(fn)
	if inTask() then Scheduler.taskCoroutines[co] = true end
	local result = { coroutine.resume(co, ...) }
	while true do
		if not result[1] then return false, result[2] end
		if coroutine.status(co) == 'dead' then return true, unpack(result, 2) end
		result = { coroutine.resume(co, coroutine.yield(unpack(result, 2))) }
	end
end

-- Runs tasks until none is left or `deadline` (py.monotonic) passes. A task that raises is
-- recorded (Lightroom shows such errors in a dialog) and dropped.
function Scheduler.run(deadline)
	while #Scheduler.tasks > 0 do
		local now = py.monotonic()
		if now > deadline then return false end
		local ran, earliest = false, math.huge
		local i = 1
		while i <= #Scheduler.tasks do
			local task = Scheduler.tasks[i]
			if task.wake <= now then
				ran = true
				local ok, wake = coroutine.resume(task.co)
				if not ok then
					py.task_error(task.name, tostring(wake) .. '\n' .. debug.traceback(task.co))
					table.remove(Scheduler.tasks, i)
				elseif coroutine.status(task.co) == 'dead' then
					table.remove(Scheduler.tasks, i)
				else
					task.wake = tonumber(wake) or 0
					i = i + 1
				end
			else
				earliest = math.min(earliest, task.wake)
				i = i + 1
			end
		end
		if not ran and earliest < math.huge then
			py.sleep(math.min(math.max(earliest - py.monotonic(), 0), 0.02))
		end
	end
	return true
end

-- LrHttp: requests go out from Python threads; the calling task sleeps until the answer is in,
-- so other tasks run meanwhile, as in Lightroom. Return values follow the SDK: the body (nil on
-- a network failure) and a table of response headers, each {field, value}, plus `status` (and
-- `statusDes`), or `error = {errorCode, name}` when no response came.
local LrHttp = {}
modules.LrHttp = LrHttp

local function headerPairs(headers)
	local flat = {}
	for _, header in ipairs(headers or {}) do
		assert(type(header) == 'table' and header.field and header.value ~= nil,
			'LrHttp headers are tables of the form {field = ..., value = ...}')
		flat[#flat + 1] = tostring(header.field)
		flat[#flat + 1] = tostring(header.value)
	end
	return flat
end

local function perform(method, url, body, headers, timeout, parts)
	local id = py.http_start(method, url, body, headerPairs(headers), timeout or 0, parts)
	while true do
		local done, responseBody, status, statusDes, responseHeaders, errorCode = py.http_poll(id)
		if done then
			local info = {}
			if status then
				info.status, info.statusDes = status, statusDes
				for i = 1, #responseHeaders, 2 do
					info[#info + 1] = { field = responseHeaders[i], value = responseHeaders[i + 1] }
				end
				return responseBody, info
			end
			info.error = { errorCode = errorCode, name = errorCode }
			return nil, info
		end
		LrTasks.sleep(0.005)
	end
end

function LrHttp.get(url, headers, timeout)
	requireTask('LrHttp.get')
	return perform('GET', url, nil, headers, timeout)
end

function LrHttp.post(url, postBody, headers, method, timeout, totalSize)
	requireTask('LrHttp.post')
	assert(type(postBody) == 'string', 'this stand-in takes whole-string bodies only')
	return perform(method or 'POST', url, postBody, headers, timeout)
end

-- postMultipart(url, content, headers, timeout, callbackFn, suppressFormData): each content item
-- is {name, value} or {name, fileName, filePath, contentType}; Lightroom reads a filePath part
-- from disk itself, so the file never becomes a Lua string. The form's Content-Type (with its
-- boundary) is LrHttp's own.
function LrHttp.postMultipart(url, content, headers, timeout, callbackFn, suppressFormData)
	requireTask('LrHttp.postMultipart')
	local parts = {}
	for _, item in ipairs(content) do
		assert(type(item.name) == 'string', 'every postMultipart part has a name')
		assert((item.value ~= nil) ~= (item.filePath ~= nil), 'a part has either a value or a filePath')
		parts[#parts + 1] = { item.name, item.value or false, item.fileName or false,
			item.filePath or false, item.contentType or false }
	end
	for _, header in ipairs(headers or {}) do
		assert(string.lower(header.field) ~= 'content-type', 'postMultipart sets the Content-Type itself')
	end
	return perform('POST', url, nil, headers, timeout, parts)
end

-- LrDate: seconds since 2001-01-01 (Cocoa reference date), as Lightroom counts them.
modules.LrDate = { currentTime = function() return py.time() - 978307200 end }

-- LrFunctionContext: cleanup handlers run when the function ends; failure handlers when it raises.
local LrFunctionContext = {}
modules.LrFunctionContext = LrFunctionContext

function LrFunctionContext.callWithContext(name, fn, ...)
	local context = { cleanups = {}, failures = {} }
	function context:addCleanupHandler(handler) table.insert(self.cleanups, handler) end
	function context:addFailureHandler(handler) table.insert(self.failures, handler) end
	local result = { LrTasks.pcall(fn, context, ...) }
	if not result[1] then
		for _, handler in ipairs(context.failures) do handler(false, result[2]) end
	end
	for i = #context.cleanups, 1, -1 do context.cleanups[i](result[1], result[2]) end
	if not result[1] then error(result[2], 0) end
	return unpack(result, 2)
end

-- LrProgressScope: the bar in Lightroom's activity area. The user's cancel is `py.cancel_requested`.
local function newProgressScope(_, args)
	local scope = { title = args.title, portion = 0, caption = '', cancelable = true, finished = false }
	function scope:setPortionComplete(done, total)
		self.portion = (total and total > 0) and done / total or done
		py.progress(self.portion, self.caption)
	end
	function scope:setCaption(caption) self.caption = caption end
	function scope:setCancelable(flag) self.cancelable = flag end
	function scope:isCanceled() return self.cancelable and py.cancel_requested() end
	function scope:done() self.finished = true end
	function scope:isDone() return self.finished end
	if args.functionContext then
		args.functionContext:addCleanupHandler(function() scope.finished = true end)
	end
	return scope
end
modules.LrProgressScope = setmetatable({}, { __call = newProgressScope })

-- LrPrefs: one table per plugin that persists between runs; the host keeps it.
local pluginPrefs = {}
modules.LrPrefs = { prefsForPlugin = function() return pluginPrefs end }

-- LrLogger: LrLogger('name') gives a logger; messages go to the host's log.
local function newLogger(_, name)
	local logger = {}
	function logger:enable() end
	for _, level in ipairs({ 'trace', 'debug', 'info', 'warn', 'error' }) do
		logger[level] = function(self, ...)
			local parts = {}
			for i = 1, select('#', ...) do parts[i] = tostring((select(i, ...))) end
			py.log(level, table.concat(parts, ' '))
		end
		logger[level .. 'f'] = function(self, format, ...) py.log(level, string.format(format, ...)) end
	end
	return logger
end
modules.LrLogger = setmetatable({}, { __call = newLogger })

-- LrView: the factory builds plain tables describing the controls, as Lightroom's would before
-- it draws them; `bind` returns a binding description.
local LrView = {}
modules.LrView = LrView

function LrView.osFactory()
	return setmetatable({}, { __index = function(_, kind)
		return function(_, args)
			args = args or {}
			args._kind = kind
			return args
		end
	end })
end

function LrView.bind(spec)
	if type(spec) == 'string' then spec = { key = spec } end
	spec._binding = true
	return spec
end

function LrView.share(name) return { _share = name } end

-- LrPathUtils and LrFileUtils: file-system calls done by Python.
modules.LrPathUtils = {
	extension = py.path_extension,
	removeExtension = py.path_remove_extension,
	addExtension = py.path_add_extension,
	leafName = py.path_leaf_name,
	parent = py.path_parent,
	child = py.path_child,
}

modules.LrFileUtils = {
	readFile = py.file_read,
	fileAttributes = function(path) return { fileSize = py.file_size(path) } end,
	exists = py.file_exists,
	delete = py.file_delete,
	move = py.file_move,
	copy = py.file_copy,
	chooseUniqueFileName = py.file_unique_name,
}

-- LrApplication: a catalog that records the photos added to it. addPhoto is only allowed inside
-- withWriteAccessDo, as in Lightroom.
-- While another task holds the catalog (py.catalog_busy), a call with a timeout waits it out and
-- answers 'aborted' (calling timeoutParams.callback) instead of running the function; without
-- a timeout it raises. Otherwise it runs the function and answers 'executed'.
local catalog = { writeAccess = false }
function catalog:withWriteAccessDo(actionName, fn, timeoutParams)
	requireTask('catalog:withWriteAccessDo')
	assert(type(actionName) == 'string', 'withWriteAccessDo needs an action name (shown in Undo)')
	assert(timeoutParams == nil or type(timeoutParams) == 'table', 'timeoutParams is a table')
	assert(not self.writeAccess, 'withWriteAccessDo cannot be nested')
	if py.catalog_busy() then
		if not timeoutParams then error('LrCatalog:withWriteAccessDo: could not obtain write access', 2) end
		LrTasks.sleep(0.05) -- stands for timeoutParams.timeout
		if timeoutParams.callback then timeoutParams.callback() end
		return 'aborted'
	end
	self.writeAccess = true
	local ok, message = LrTasks.pcall(fn)
	self.writeAccess = false
	if not ok then error(message, 0) end
	return 'executed'
end
function catalog:addPhoto(path, stackWithPhoto, position)
	if not self.writeAccess then error('catalog:addPhoto must be called inside catalog:withWriteAccessDo', 2) end
	assert(position == nil or position == 'above' or position == 'below', 'position is above or below')
	local stackPath = stackWithPhoto and stackWithPhoto:getRawMetadata('path') or nil
	return py.catalog_add(path, stackPath, position)
end
modules.LrApplication = { activeCatalog = function() return catalog end }

-- The export filter's context: `filterContext:renditions()` yields (sourceRendition,
-- renditionToSatisfy) pairs in order. The source rendition's render takes `renderSeconds`, then
-- `waitForRender()` answers (true, path) or (false, message); `renditionIsDone(success, message)`
-- reports the outcome to the host. `items` come from Python: {path, photoPath, renderError}.
local function newFilterContext(propertyTable, items, renderSeconds)
	local context = { propertyTable = propertyTable, renditionsToSatisfy = {} }
	local started = py.monotonic()
	local pairsList = {}
	for index, item in ipairs(items) do
		local photo = { getRawMetadata = function(_, key)
			assert(key == 'path', 'the stand-in photo only knows its path')
			return item.photoPath
		end }
		local source = { photo = photo, destinationPath = item.path }
		-- Lightroom renders upstream in its own task, one photo after another from the start of
		-- the export, whatever the filter is doing: photo i is ready i * renderSeconds in.
		function source:waitForRender()
			requireTask('waitForRender')
			local waited = math.max(started + index * renderSeconds - py.monotonic(), 0)
			py.render_wait(index, waited)
			LrTasks.sleep(waited)
			if item.renderError then return false, item.renderError end
			return true, item.path
		end
		local toSatisfy = { photo = photo, destinationPath = item.path }
		function toSatisfy:renditionIsDone(success, message)
			py.rendition_done(index, success and true or false, message, false)
		end
		context.renditionsToSatisfy[index] = toSatisfy
		pairsList[index] = { source, toSatisfy }
	end
	-- Lightroom's iterator calls renditionIsDone(true) for the rendition it leaves, when the loop
	-- advances or ends, if the filter has not already done so ("The iterator for
	-- filterContext:renditions calls it automatically if you have not already done so", SDK
	-- guide, export post-process actions). A result written after that is too late: the file has
	-- gone downstream as it was.
	function context:renditions(options)
		local i = 0
		return function()
			if i > 0 then py.rendition_done(i, true, nil, true) end
			i = i + 1
			local pair = pairsList[i]
			if pair then return pair[1], pair[2] end
		end
	end
	return context
end

local function import(name)
	local module = modules[name]
	if module == nil then error('the Lightroom stand-in has no module ' .. tostring(name), 2) end
	return module
end

return import, Scheduler, pluginPrefs, newFilterContext
