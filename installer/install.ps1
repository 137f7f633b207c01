<#
.SYNOPSIS
Installs the Seamwise server, the Photoshop panel and the Lightroom Classic plugin for this user.

.DESCRIPTION
Right-click > Run with PowerShell, or:
  powershell -ExecutionPolicy Bypass -File installer\install.ps1 [-Prefix DIR] [-Backend cpu|cuda]
      [-Python PATH] [-NoService] [-NoPlugins] [-Lan] [-Uninstall]

Installs uv (pinned, hash-checked, from PyPI), a private Python 3.11 and a virtual environment
under %LOCALAPPDATA%\Seamwise\app (or -Prefix), PyTorch and every other package from the pinned
lock file for Windows and the backend (installer\locks\), the plugins, and a scheduled task that
starts `seamwise serve` on 127.0.0.1 at logon. Jobs, paired tokens and model choices live in
%LOCALAPPDATA%\Seamwise and survive upgrades and -Uninstall. The backend decision and the task
definition come from backend.py and service.py, the same files install.sh uses. docs\INSTALL.md
describes each step.
#>
[CmdletBinding()]
param(
    [string]$Prefix = "",
    [ValidateSet("cpu", "cuda")][string]$Backend = "",
    [string]$Python = "",
    [switch]$NoService,
    [switch]$NoPlugins,
    [switch]$Lan,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
$ProgressPreference = "SilentlyContinue"   # Invoke-WebRequest is many times slower with it

$UvVersion = "0.13.10"
$UvUrl = "https://files.pythonhosted.org/packages/cf/e4/d0704c116ada58e8450890e2defaaf2f07e8d264cf94669210e0823fbcb2/uv-0.13.10-py3-none-win_amd64.whl"
$UvSha256 = "d87b9cf8165f2b3cc596e856b5bf794da9cfad6d1b110ca9d87eed42a15b3684"
$PythonVersion = "3.11"
$TaskName = "Seamwise server"
$Upia = Join-Path ${env:CommonProgramFiles} "Adobe\Adobe Desktop Common\RemoteComponents\UPI\UnifiedPluginInstallerAgent\UnifiedPluginInstallerAgent.exe"

$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
$Src = Split-Path -Parent $Here
$DataDir = Join-Path $env:LOCALAPPDATA "Seamwise"
if (-not $Prefix) { $Prefix = Join-Path $DataDir "app" }
New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
$Prefix = (Resolve-Path $Prefix).Path
$Manifest = Join-Path $Prefix "manifest.txt"

function Write-Step([string]$Message) { Write-Host "Seamwise: $Message" }

function Invoke-Native {
    # Runs a program and stops the installer if it fails (PowerShell 5 does not, by itself).
    param([string]$Exe, [string[]]$Arguments)
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed (exit $LASTEXITCODE)" }
}

function Invoke-Quiet {
    # Runs a program whose failure is expected and handled by the caller ($LASTEXITCODE): with
    # "Stop", Windows PowerShell 5.1 turns any line it writes to stderr into a terminating error.
    param([string]$Exe, [string[]]$Arguments)
    $ErrorActionPreference = "Continue"
    & $Exe @Arguments 2>$null
}

function Stop-SeamwiseTask {
    Invoke-Quiet "schtasks.exe" @("/End", "/TN", $TaskName) | Out-Null
}

function Add-Manifest([string]$Kind, [string]$Path) {
    Add-Content -Path "$Manifest.new" -Value "$Kind $Path" -Encoding UTF8
}

# -- uninstall -----------------------------------------------------------------------------------
if ($Uninstall) {
    if (-not (Test-Path (Join-Path $Prefix "install.json"))) {
        throw "$Prefix holds no Seamwise installation (no install.json)"
    }
    Stop-SeamwiseTask
    if (Test-Path $Manifest) {
        $lines = @(Get-Content $Manifest)
        [array]::Reverse($lines)
        foreach ($line in $lines) {
            $kind, $path = $line -split " ", 2
            switch ($kind) {
                "file" { Remove-Item -Recurse -Force -LiteralPath $path -ErrorAction SilentlyContinue; Write-Step "removed $path" }
                "dir" { if (-not (Get-ChildItem -Force -LiteralPath $path -ErrorAction SilentlyContinue)) { Remove-Item -Force -LiteralPath $path -ErrorAction SilentlyContinue } }
                "task" { Invoke-Quiet "schtasks.exe" @("/Delete", "/TN", $path, "/F") | Out-Null; Write-Step "removed the scheduled task $path" }
                "upia" {
                    Invoke-Quiet $Upia @("/remove", $path) | Out-Null
                    if ($LASTEXITCODE -eq 0) { Write-Step "removed the Photoshop panel" }
                    else { Write-Step "remove the Photoshop panel in Creative Cloud (Stock & Marketplace > Plugins)" }
                }
            }
        }
    }
    Remove-Item -Recurse -Force -LiteralPath $Prefix
    Write-Step "removed $Prefix"
    Write-Step "kept your jobs, paired devices and model choices in $DataDir (delete it to remove them)"
    exit 0
}

function New-Folder([string]$Path) {
    # New-Item -Force, recording each folder it creates (uninstall removes them if empty)
    if (Test-Path $Path) { return }
    New-Folder (Split-Path -Parent $Path)
    New-Item -ItemType Directory -Path $Path | Out-Null
    Add-Manifest "dir" $Path
}

$Upgrade = Test-Path (Join-Path $Prefix "install.json")
if (Test-Path $Manifest) { Copy-Item $Manifest "$Manifest.new" -Force } else { Set-Content "$Manifest.new" "" -Encoding UTF8 }
if ($Upgrade) {
    Write-Step "upgrading the installation in $Prefix (data in $DataDir is kept)"
    Stop-SeamwiseTask
}

# -- 1. uv, pinned ---------------------------------------------------------------------------------
$Tools = Join-Path $Prefix "tools"
$Uv = Join-Path $Tools "uv.exe"
$HaveUv = (Test-Path $Uv) -and ((& $Uv --version) -match " $UvVersion")
if (-not $HaveUv) {
    Write-Step "installing uv $UvVersion (pinned, hash-checked)"
    New-Item -ItemType Directory -Force -Path $Tools | Out-Null
    $wheel = Join-Path $Tools "uv.zip"
    Invoke-WebRequest -UseBasicParsing -Uri $UvUrl -OutFile $wheel
    if ((Get-FileHash -Algorithm SHA256 $wheel).Hash.ToLower() -ne $UvSha256) {
        throw "the downloaded uv does not match its pinned hash"
    }
    $unpacked = Join-Path $Tools "uv-wheel"
    Expand-Archive -Force -Path $wheel -DestinationPath $unpacked
    Copy-Item (Join-Path $unpacked "uv-$UvVersion.data\scripts\uv.exe") $Uv -Force
    Remove-Item -Recurse -Force $wheel, $unpacked
}

# uv does not read pip's configuration: hand it the wheel folders pip is set up with.
$FindLinks = $env:UV_FIND_LINKS
if (-not $FindLinks) { $FindLinks = $env:PIP_FIND_LINKS }
if (-not $FindLinks -and (Get-Command pip -ErrorAction SilentlyContinue)) {
    $FindLinks = (Invoke-Quiet "pip" @("config", "get", "global.find-links")) -join " "
}
if (-not $env:UV_CACHE_DIR) { $env:UV_CACHE_DIR = Join-Path $Prefix "cache" }
$env:UV_PYTHON_INSTALL_DIR = Join-Path $Prefix "python"
$env:UV_NO_CONFIG = "1"

# -- 2. a private Python 3.11 ----------------------------------------------------------------------
if (-not $Python) {
    Invoke-Quiet $Uv @("python", "install", "--quiet", $PythonVersion) | Out-Null
    if ($LASTEXITCODE -eq 0) {
        $Python = (& $Uv python find --python-preference only-managed $PythonVersion)
        Write-Step "Python: uv's managed Python $PythonVersion in $env:UV_PYTHON_INSTALL_DIR"
    } else {
        $Python = (Invoke-Quiet $Uv @("python", "find", "--python-preference", "only-system", $PythonVersion))
        if ($LASTEXITCODE -ne 0 -or -not $Python) {
            throw "cannot download a managed Python $PythonVersion and none is installed; install Python $PythonVersion or pass -Python PATH"
        }
        Write-Step "Python: could not download uv's managed Python $PythonVersion; using this machine's Python $PythonVersion at $Python"
    }
}

$Venv = Join-Path $Prefix "venv"
$NewVenv = "$Venv.new"
if (Test-Path $NewVenv) { Remove-Item -Recurse -Force $NewVenv }
Invoke-Native $Uv @("venv", "--quiet", "--relocatable", "--python", $Python, $NewVenv)
$Vpy = Join-Path $NewVenv "Scripts\python.exe"

# -- 3. backend and the pinned packages ------------------------------------------------------------
$decideArgs = @((Join-Path $Here "backend.py"), "--format", "json")
# (Windows PowerShell drops empty arguments to programs: add only what has a value)
if ($FindLinks) { $decideArgs += @("--find-links", $FindLinks) }
if ($Backend) { $decideArgs += @("--backend", $Backend) }
$ErrorActionPreference = "Continue"   # backend.py says on stderr why nothing fits: show it
$decided = & $Vpy @decideArgs
$ErrorActionPreference = "Stop"
if ($LASTEXITCODE -ne 0) { throw "no PyTorch build fits this machine (above)" }
$choice = ($decided -join "`n") | ConvertFrom-Json
Write-Step "backend: $($choice.backend) ($($choice.reason))"
foreach ($note in $choice.notes) { Write-Step "note: $note" }
$Lock = Join-Path $Here "locks\$($choice.lock)"
if (-not (Test-Path $Lock)) { throw "no lock file $($choice.lock) for this platform" }
Write-Step "installing the packages pinned in locks\$($choice.lock)"
$env:UV_FIND_LINKS = ($FindLinks -split " " | Where-Object { $_ }) -join ","
$pipArgs = @("pip", "install", "--quiet", "--python", $Vpy, "--index-strategy", "unsafe-best-match", "-r", $Lock)
if ($choice.index_url) { $pipArgs += @("--extra-index-url", $choice.index_url) }
Invoke-Native $Uv $pipArgs
$Wheel = Get-ChildItem (Join-Path $Src "dist\seamwise-*.whl") -ErrorAction SilentlyContinue | Sort-Object Name | Select-Object -Last 1
$Package = if ($Wheel) { $Wheel.FullName } else { $Src }
Invoke-Native $Uv @("pip", "install", "--quiet", "--python", $Vpy, "--no-deps", "--reinstall-package", "seamwise", $Package)

if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
Move-Item $NewVenv $Venv   # relocatable: its scripts find their interpreter after the move
$Vpy = Join-Path $Venv "Scripts\python.exe"
$Bin = Join-Path $Prefix "bin"
New-Item -ItemType Directory -Force -Path $Bin | Out-Null
$Exe = Join-Path $Bin "seamwise.cmd"
Set-Content -Path $Exe -Encoding ASCII -Value @(
    "@echo off",
    "rem Seamwise, as installed by installer\install.ps1: the private environment, offline model loading.",
    "set HF_HUB_OFFLINE=1",
    "`"$Vpy`" -m seamwise %*"
)

# -- 4. plugins ------------------------------------------------------------------------------------
$PsJson = "null"
$LrJson = "null"
if (-not $NoPlugins) {
    $Ccx = Get-ChildItem (Join-Path $Src "dist\seamwise-photoshop-*.ccx") -ErrorAction SilentlyContinue | Sort-Object Name | Select-Object -Last 1
    $LrZip = Get-ChildItem (Join-Path $Src "dist\seamwise-lightroom-*.zip") -ErrorAction SilentlyContinue | Sort-Object Name | Select-Object -Last 1
    if (-not $Ccx -or -not $LrZip) {
        Write-Step "plugins skipped: this copy has no dist\ folder with the built plugins (use the release download, or run 'make package' on a machine with bash and Node.js)"
    } else {
        $Plugins = Join-Path $Prefix "plugins"
        New-Item -ItemType Directory -Force -Path $Plugins | Out-Null
        # A .ccx on another drive than Photoshop is reported to fail: install from the app folder.
        $CcxHere = Join-Path $Plugins $Ccx.Name
        Copy-Item $Ccx.FullName $CcxHere -Force
        $PsVersion = $Ccx.BaseName -replace "^seamwise-photoshop-", ""
        $LrVersion = $LrZip.BaseName -replace "^seamwise-lightroom-", ""
        $installed = $false
        if (Test-Path $Upia) {
            & $Upia /install $CcxHere
            $installed = ($LASTEXITCODE -eq 0)
        }
        if ($installed) {
            Add-Manifest "upia" "Seamwise"
            $PsJson = "{`"installed`": true, `"version`": `"$PsVersion`", `"via`": `"UnifiedPluginInstallerAgent`"}"
            Write-Step "Photoshop panel $PsVersion installed (Plugins > Seamwise in Photoshop)"
        } else {
            Start-Process $CcxHere
            $PsJson = "{`"installed`": false, `"state`": `"opened`", `"version`": `"$PsVersion`", `"next`": `"in the Creative Cloud window click Install, then OK on the warning about a plugin from outside the marketplace`"}"
            Write-Step "Photoshop panel: Creative Cloud opened $CcxHere; click Install, then OK on the warning"
        }
        $Modules = Join-Path $env:APPDATA "Adobe\Lightroom\Modules"
        New-Folder $Modules
        $Lr = Join-Path $Modules "seamwise.lrplugin"
        if (Test-Path $Lr) { Remove-Item -Recurse -Force $Lr }
        Expand-Archive -Force -Path $LrZip.FullName -DestinationPath $Modules
        Add-Manifest "file" $Lr
        $LrJson = (@{ installed = $true; version = $LrVersion; path = $Lr } | ConvertTo-Json -Compress)
        Write-Step "Lightroom Classic plugin $LrVersion installed (loads at Lightroom's next start)"
    }
}

# -- 5. login service: a scheduled task at logon ---------------------------------------------------
$ServiceJson = "null"
if (-not $NoService) {
    $TaskXml = Join-Path $Prefix "seamwise-task.xml"
    $taskArgs = @((Join-Path $Here "service.py"), "schtasks", "--module", "--exe", (Join-Path $Venv "Scripts\pythonw.exe"), "-o", $TaskXml)
    if ($Lan) { $taskArgs += "--lan" }
    Invoke-Native $Vpy $taskArgs
    Invoke-Native "schtasks.exe" @("/Create", "/TN", $TaskName, "/XML", $TaskXml, "/F")
    Add-Manifest "task" $TaskName
    schtasks.exe /Run /TN $TaskName | Out-Null
    Write-Step "service started (scheduled task '$TaskName', at every logon)"
    if ($Lan) { Write-Step "Windows asks once whether Python may accept connections from the network: allow private networks" }
    $ServiceJson = (@{ kind = "schtasks"; task = $TaskName; lan = [bool]$Lan } | ConvertTo-Json -Compress)
}

# -- 6. what was installed -------------------------------------------------------------------------
Get-Content "$Manifest.new" | Where-Object { $_ } | Select-Object -Unique | Set-Content $Manifest -Encoding UTF8
Remove-Item "$Manifest.new"
$env:PREFIX = $Prefix; $env:DATA_DIR = $DataDir; $env:UPGRADE = [string][int]$Upgrade
$env:PYTHON = $Python; $env:LAN = [string][int][bool]$Lan; $env:SERVICE_JSON = $ServiceJson
$env:PS_JSON = $PsJson; $env:LR_JSON = $LrJson; $env:BACKEND = $choice.backend
$env:VARIANT = $choice.variant; $env:REASON = $choice.reason; $env:LOCK = $choice.lock
$env:TORCH = $choice.torch
Invoke-Native $Vpy @((Join-Path $Here "write_record.py"), (Join-Path $Prefix "install.json"))
Write-Step "installed in $Prefix"
if ($Lan) {
    & $Exe pair
    Write-Step "LAN render box: enter this code in the Photoshop panel or Lightroom on the other machine"
}
& $Exe doctor
