#!/usr/bin/env bash
# Build the Linux bundle: dist/workbench/ (one folder; run dist/workbench/workbench), with the
# desktop entry, icons, MIME types and AppStream metadata under dist/workbench/share/ and an
# installer for them (dist/workbench/install-desktop-entry.sh).
#
#   packaging/build-linux.sh            # uses $PYTHON, else .venv/bin/python, else python3
#   packaging/build-linux.sh --tar      # also dist/torch-workbench-VERSION-linux-ARCH.tar.gz
#
# The bundle carries whatever torch the build Python has: a CUDA build of torch gives a
# CUDA bundle (several GB), a CPU-only torch a much smaller one (see packaging/README.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
TAR=0
for arg in "$@"; do
    case "$arg" in
        --tar) TAR=1 ;;
        *) echo "usage: $0 [--tar]" >&2; exit 2 ;;
    esac
done

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's workbench, not another
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

BUNDLE=dist/workbench
packaging/stage-desktop-files.sh "$BUNDLE"

"$BUNDLE/workbench" --version
SIZE=$(du -sh "$BUNDLE" | cut -f1)
echo "Built $BUNDLE ($SIZE) in $(( $(date +%s) - START )) s"

if [[ $TAR == 1 ]]; then
    VERSION=$("$PYTHON" -c "import workbench; print(workbench.__version__)")
    ARCHIVE="dist/torch-workbench-$VERSION-linux-$(uname -m).tar.gz"
    tar -C dist -czf "$ARCHIVE" workbench
    echo "Archived $ARCHIVE ($(du -sh "$ARCHIVE" | cut -f1))"
fi
