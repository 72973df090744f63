# Build the Windows bundle: dist\workbench\ with workbench-gui.exe (the window, no console; point
# the Start-menu shortcut here) and workbench.exe (the command line) over one _internal folder.
#
#   powershell -ExecutionPolicy Bypass -File packaging\build-windows.ps1 [-Zip]
#
# Run it from a virtual environment that has the app and its `package` extra installed:
#   py -3.11 -m venv .venv; .venv\Scripts\pip install -e ".[package]"
# The bundle carries whatever torch that environment has (CUDA or CPU-only; see README.md).
param([switch]$Zip)
$ErrorActionPreference = "Stop"
$Root = Resolve-Path (Join-Path $PSScriptRoot "..")
Set-Location $Root
$Python = if ($env:PYTHON) { $env:PYTHON } elseif (Test-Path ".venv\Scripts\python.exe") { ".venv\Scripts\python.exe" } else { "python" }
$env:PYTHONPATH = "$Root"
$env:QT_QPA_PLATFORM = "offscreen"
$Start = Get-Date

& $Python -c "import PyInstaller"
if ($LASTEXITCODE -ne 0) { Write-Error "PyInstaller is missing: $Python -m pip install -e '.[package]'" }
if (-not (Test-Path "resources\icons\workbench.ico")) { & $Python packaging\make_icons.py }

& $Python -m PyInstaller --noconfirm --clean --log-level WARN `
    --distpath dist --workpath build\pyinstaller packaging\workbench.spec
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

& dist\workbench\workbench.exe --version
if ($LASTEXITCODE -ne 0) { Write-Error "the bundle does not start" }
$Bytes = (Get-ChildItem dist\workbench -Recurse -File | Measure-Object -Property Length -Sum).Sum
$Seconds = [int]((Get-Date) - $Start).TotalSeconds
Write-Host ("Built dist\workbench ({0:N1} GB) in {1} s" -f ($Bytes / 1GB), $Seconds)

if ($Zip) {
    $Version = & $Python -c "import workbench; print(workbench.__version__)"
    $Archive = "dist\torch-workbench-$Version-windows-x64.zip"
    Compress-Archive -Path dist\workbench -DestinationPath $Archive -Force
    Write-Host "Archived $Archive"
}
