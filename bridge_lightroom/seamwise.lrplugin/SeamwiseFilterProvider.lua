--[[
The export post-process action (LrExportFilterProvider).

Lightroom calls these hooks: `exportPresetFields` declares the settings kept in export presets,
`sectionForFilterInDialog` draws the section in the Export dialog, and `postProcessRenderedPhotos`
runs once per export with every rendition of the batch.
]]

local Settings = require 'SeamwiseSettings'
local Dialog = require 'SeamwiseDialog'
local Export = require 'SeamwiseExport'

return {
	exportPresetFields = Settings.presetFields,
	sectionForFilterInDialog = Dialog.section,
	postProcessRenderedPhotos = Export.postProcessRenderedPhotos,
}
