#!/usr/bin/env bash
# Build the macOS bundle: "dist/Torch Workbench.app" (double-click; opens .pth, .pt, .ckpt,
# .safetensors and .toml from Finder). The command line is inside it:
#   "dist/Torch Workbench.app/Contents/MacOS/workbench" --version
#
#   packaging/build-macos.sh            # uses $PYTHON, else .venv/bin/python, else python3
#   packaging/build-macos.sh --dmg      # also dist/torch-workbench-VERSION-macos-ARCH.dmg (hdiutil)
#
# Build on the architecture you ship for (arm64 for MPS). The app is not signed; for others to
# open it without warnings, sign and notarize it (codesign --deep, xcrun notarytool).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DMG=0
for arg in "$@"; do
    case "$arg" in
        --dmg) DMG=1 ;;
        *) echo "usage: $0 [--dmg]" >&2; exit 2 ;;
    esac
done

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export QT_QPA_PLATFORM=offscreen
START=$(date +%s)

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "PyInstaller is missing: $PYTHON -m pip install -e '.[package]'" >&2
    exit 2
fi
if [[ ! -f resources/icons/workbench.icns ]]; then
    "$PYTHON" packaging/make_icons.py
fi

"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/workbench.spec

APP="dist/Torch Workbench.app"
"$APP/Contents/MacOS/workbench" --version
echo "Built $APP ($(du -sh "$APP" | cut -f1)) in $(( $(date +%s) - START )) s"

if [[ $DMG == 1 ]]; then
    VERSION=$("$PYTHON" -c "import workbench; print(workbench.__version__)")
    IMAGE="dist/torch-workbench-$VERSION-macos-$(uname -m).dmg"
    hdiutil create -volname "Torch Workbench" -srcfolder "$APP" -ov -format UDZO "$IMAGE"
    echo "Created $IMAGE"
fi
