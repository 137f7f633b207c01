--[[
Seamwise for Lightroom Classic.

Adds the "Seamwise enhance" post-process action to the Export dialog: every exported TIFF or PNG
is sent to a Seamwise server, enhanced without tile seams, and written back over the exported
file before it reaches its destination.
]]

return {
	LrSdkVersion = 10.0,
	LrSdkMinimumVersion = 6.0,

	LrToolkitIdentifier = 'com.seamwise.lightroom',
	LrPluginName = 'Seamwise',

	LrExportFilterProvider = {
		title = 'Seamwise enhance',
		file = 'SeamwiseFilterProvider.lua',
		id = 'seamwiseEnhance',
	},

	VERSION = { major = 0, minor = 1, revision = 0, build = 1 },
}
