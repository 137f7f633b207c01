--[[
The post-process action: every rendition goes to the server as one job.

Flow per photo: wait for Lightroom's render, upload the file (POST /v1/jobs), poll the job
(GET /v1/jobs/{id}) while the progress bar follows it, download the result over the rendered file
(GET /v1/jobs/{id}/result), release the job (DELETE), report the rendition done. A photo that fails
is reported failed with the server's message; the others go on.

Each photo is finished and reported inside its own pass of the renditions loop: Lightroom
reports a rendition successful as soon as the loop moves past it, whatever the filter does later.
Lightroom renders the next photos meanwhile. Once a job id is known, a dropped connection or a
restarting server is waited out and the same job is polled again: nothing is uploaded twice, and
a result the server already finished is not rendered again.
]]

local LrTasks = import 'LrTasks'
local LrProgressScope = import 'LrProgressScope'
local LrFileUtils = import 'LrFileUtils'
local LrPathUtils = import 'LrPathUtils'
local LrApplication = import 'LrApplication'
local LrLogger = import 'LrLogger'

local Settings = require 'SeamwiseSettings'
local Client = require 'SeamwiseClient'
local Models = require 'SeamwiseModels'

local logger = LrLogger('Seamwise')
logger:enable('logfile')

local contentTypes = { tif = 'image/tiff', tiff = 'image/tiff', png = 'image/png' }

local CANCELLED = 'Cancelled.'

--[[ Batch: the state of one export.
  total      number of photos (for the progress bar)
  fractions  progress of each photo, 0..1, by index
  cancelled  set once the user cancels; the photo's job is stopped ]]
local Batch = {}
Batch.__index = Batch

local function newBatch(total, scope)
	return setmetatable({ total = total, fractions = {}, scope = scope, cancelled = false }, Batch)
end

function Batch:isCancelled()
	if not self.cancelled and self.scope:isCanceled() then self.cancelled = true end
	return self.cancelled
end

function Batch:setProgress(index, fraction, caption)
	if caption then self.scope:setCaption(caption) end
	self.fractions[index] = fraction
	local sum = 0
	for _, value in pairs(self.fractions) do sum = sum + value end
	self.scope:setPortionComplete(sum, self.total)
end

local function describeProgress(index, total, status)
	local caption = string.format('Seamwise: photo %d of %d, %s', index, total, tostring(status.state))
	local progress = status.progress
	if status.state == 'queued' and tonumber(status.position) then
		caption = caption .. string.format(' (position %d)', status.position)
	elseif type(progress) == 'table' and tonumber(progress.steps) and tonumber(progress.steps) > 0 then
		caption = caption .. string.format(' (step %d of %d', tonumber(progress.step) or 0, progress.steps)
		if tonumber(progress.eta_s) then
			caption = caption .. string.format(', about %d s left', math.ceil(progress.eta_s))
		end
		caption = caption .. ')'
	end
	local where = type(progress) == 'table' and Models.runsOn(progress.runs_on)
	if where then caption = caption .. ', ' .. where end -- a render cluster names the box
	return caption
end

--- Downloads the job's result beside the rendering, then moves it over the rendering, so that a
--- failed download leaves Lightroom's rendering untouched. Returns true, or nil and a message.
local function downloadOver(client, job, path, stop)
	local partial = path .. '.seamwise-part'
	LrFileUtils.delete(partial) -- a leftover from an earlier, interrupted export
	local downloaded, message = client:download(job, partial, stop)
	if not downloaded then
		LrFileUtils.delete(partial)
		return nil, message
	end
	LrFileUtils.delete(path)
	local moved, moveError = LrFileUtils.move(partial, path)
	if not moved and not LrFileUtils.exists(path) then
		return nil, 'Cannot move the result into place: ' .. tostring(moveError)
	end
	return true
end

--- Saves a copy of the result beside the original photo and adds it to the catalog, stacked
--- above the original. The exported file itself may still move (to the export destination), so
--- the catalog gets a copy that stays where the original lives.
local function addToCatalog(photo, resultPath)
	local originalPath = photo:getRawMetadata('path')
	local name = LrPathUtils.removeExtension(LrPathUtils.leafName(originalPath)) .. '-seamwise'
	local copyPath = LrPathUtils.child(LrPathUtils.parent(originalPath),
		LrPathUtils.addExtension(name, LrPathUtils.extension(resultPath)))
	copyPath = LrFileUtils.chooseUniqueFileName(copyPath)
	LrFileUtils.copy(resultPath, copyPath)
	if LrFileUtils.exists(copyPath) ~= 'file' then
		return nil, 'Cannot copy the result beside the original, to ' .. copyPath .. '.'
	end
	local catalog = LrApplication.activeCatalog()
	-- With a timeout, Lightroom answers 'aborted' instead of raising when another task keeps the
	-- catalog busy for that long.
	local outcome = catalog:withWriteAccessDo('Add Seamwise result', function()
		catalog:addPhoto(copyPath, photo, 'above')
	end, { timeout = 30 })
	if outcome ~= 'executed' then
		return nil, 'The photo was enhanced, but not stacked in the catalog: Lightroom kept the catalog busy. '
			.. 'The result is at ' .. copyPath .. '.'
	end
	return true
end

--- What a job status means for the photo: true when done, false and a message when it ended
--- without a result, nil while it is still on its way.
local function jobOutcome(status)
	if status.state == 'done' then return true end
	if status.state == 'failed' then
		local failure = type(status.error) == 'table' and status.error or {}
		return false, failure.message or 'The server could not render this photo.'
	end
	if status.state == 'cancelled' then return false, 'The job was cancelled on the server.' end
end

--- Follows one uploaded job until it ends; returns true when it is done, or nil and a message.
local function followJob(batch, client, job, index)
	local stop = function() return batch:isCancelled() end
	while true do
		if batch:isCancelled() then
			local state = client:delete(job)
			logger:infof('job %s cancelled by the user, server state %s', job, tostring(state))
			return nil, CANCELLED
		end
		local status, message = client:status(job, stop)
		-- unreachable while the user cancelled: go round once more, to cancel the job
		if not status and not batch:isCancelled() then return nil, message end
		if status then
			local done, failure = jobOutcome(status)
			if done ~= nil then return done, failure end
			local progress = type(status.progress) == 'table' and tonumber(status.progress.fraction) or 0
			batch:setProgress(index, math.max(0, math.min(progress, 1)) * 0.9,
				describeProgress(index, batch.total, status))
			LrTasks.sleep(client.timing.pollInterval)
		end
	end
end

--- Enhances one rendered file in place. Returns true, or nil and a message.
local function enhance(batch, client, settings, item)
	local extension = string.lower(LrPathUtils.extension(item.path) or '')
	local contentType = contentTypes[extension]
	if not contentType then
		return nil, 'Seamwise needs a TIFF or PNG export; this photo was rendered as "' .. extension .. '".'
	end
	if LrFileUtils.exists(item.path) ~= 'file' or (LrFileUtils.fileAttributes(item.path).fileSize or 0) == 0 then
		return nil, 'The rendered file is empty or unreadable.'
	end

	local stop = function() return batch:isCancelled() end
	local job, message = client:submit(item.path, LrPathUtils.leafName(item.path), contentType,
		Settings.jobQuery(settings), stop)
	if not job then
		if batch:isCancelled() then return nil, CANCELLED end
		return nil, message
	end
	logger:infof('photo %d uploaded as job %s', item.index, job)

	local done, failure = followJob(batch, client, job, item.index)
	if not done then return nil, failure end

	local written, writeError = downloadOver(client, job, item.path, stop)
	if not written then return nil, writeError end
	client:delete(job)

	if settings.addToCatalog and item.photo then
		local added, addError = addToCatalog(item.photo, item.path)
		if not added then return nil, addError end
	end
	return true
end

--- Enhances one photo and reports it, always, before the renditions loop may move on: Lightroom's
--- iterator reports a rendition successful when the loop advances past it, so a result written
--- after that would never reach the export's destination.
local function processPhoto(batch, client, settings, item)
	local ok, done, message = LrTasks.pcall(enhance, batch, client, settings, item)
	if not ok then
		logger:error('photo ' .. item.index .. ': ' .. tostring(done))
		done, message = nil, 'Seamwise failed: ' .. tostring(done)
	end
	if done then
		item.rendition:renditionIsDone(true)
	else
		logger:warn('photo ' .. item.index .. ' failed: ' .. tostring(message))
		item.rendition:renditionIsDone(false, message)
	end
	batch:setProgress(item.index, 1)
end

local function countRenditions(filterContext)
	local list = filterContext.renditionsToSatisfy
	return type(list) == 'table' and #list or 0
end

--- LrExportFilterProvider.postProcessRenderedPhotos
---
--- One photo at a time inside the loop body. Lightroom renders the following photos upstream in
--- its own tasks meanwhile, so the server's render of this photo overlaps Lightroom's render of
--- the next; what the loop body waits for beyond that is the upload and the download.
local function postProcessRenderedPhotos(functionContext, filterContext)
	local settings, settingsError = Settings.fromProperties(filterContext.propertyTable)
	local client = settings and Client.new(settings.address, Settings.tokenFor(settings.address), Settings.timing)
	if client then
		local problem = client:versionProblem()
		if problem then settings, settingsError = nil, problem end
	end
	local total = math.max(countRenditions(filterContext), 1)
	local scope = LrProgressScope { title = 'Seamwise: enhancing photos', functionContext = functionContext }
	scope:setCancelable(true)
	local batch = newBatch(total, scope)

	local index = 0
	for sourceRendition, renditionToSatisfy in filterContext:renditions() do
		index = index + 1
		local rendered, pathOrMessage
		if not batch:isCancelled() then rendered, pathOrMessage = sourceRendition:waitForRender() end
		if batch:isCancelled() then
			renditionToSatisfy:renditionIsDone(false, CANCELLED)
		elseif not rendered then
			renditionToSatisfy:renditionIsDone(false, pathOrMessage)
		elseif not settings then
			renditionToSatisfy:renditionIsDone(false, settingsError)
		else
			processPhoto(batch, client, settings, { index = index, path = pathOrMessage,
				rendition = renditionToSatisfy, photo = sourceRendition.photo })
		end
	end
	scope:done()
end

-- describeProgress: the caption of a job status, checked with documented shapes (a cluster's
-- `runs_on` cannot be produced in a test)
return { postProcessRenderedPhotos = postProcessRenderedPhotos, describeProgress = describeProgress }
