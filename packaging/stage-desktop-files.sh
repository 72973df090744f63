#!/usr/bin/env bash
# Lay out the freedesktop files of Torch Workbench under DEST/share (desktop entry, AppStream
# metainfo, MIME types, hicolor icons) plus DEST/install-desktop-entry.sh to install them.
# build-linux.sh runs it on the bundle folder: packaging/stage-desktop-files.sh dist/workbench
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:?usage: $0 DEST}"
APP_ID=io.github.torchworkbench.TorchWorkbench

install -Dm644 "$ROOT/packaging/torch-workbench.desktop" "$DEST/share/applications/torch-workbench.desktop"
install -Dm644 "$ROOT/packaging/$APP_ID.metainfo.xml" "$DEST/share/metainfo/$APP_ID.metainfo.xml"
install -Dm644 "$ROOT/packaging/$APP_ID.mime.xml" "$DEST/share/mime/packages/$APP_ID.xml"
install -Dm644 "$ROOT/resources/icons/workbench.svg" "$DEST/share/icons/hicolor/scalable/apps/$APP_ID.svg"
for size in 16 32 48 64 128 256 512; do
    install -Dm644 "$ROOT/resources/icons/workbench-$size.png" \
        "$DEST/share/icons/hicolor/${size}x${size}/apps/$APP_ID.png"
done
install -m755 "$ROOT/packaging/install-desktop-entry.sh" "$DEST/install-desktop-entry.sh"
