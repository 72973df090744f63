#!/usr/bin/env bash
# Add Torch Workbench to the desktop's application menu and file associations (.pth, .pt, .ckpt,
# .safetensors, experiment .toml), for this user (~/.local) or, with PREFIX=/usr/local, for all.
# Run it from the unpacked bundle: ./install-desktop-entry.sh [--uninstall]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}}"
[[ "$PREFIX" == */share ]] || PREFIX="$PREFIX/share"
APP_ID=io.github.torchworkbench.TorchWorkbench
DESKTOP="$PREFIX/applications/torch-workbench.desktop"

refresh() {
    command -v update-mime-database >/dev/null && update-mime-database "$PREFIX/mime" || true
    command -v update-desktop-database >/dev/null && update-desktop-database "$PREFIX/applications" || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$PREFIX/icons/hicolor" || true
}

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -f "$DESKTOP" "$PREFIX/metainfo/$APP_ID.metainfo.xml" "$PREFIX/mime/packages/$APP_ID.xml"
    find "$PREFIX/icons/hicolor" -name "$APP_ID.*" -delete 2>/dev/null || true
    refresh
    echo "Removed Torch Workbench's desktop entry from $PREFIX"
    exit 0
fi

install -Dm644 "$HERE/share/mime/packages/$APP_ID.xml" "$PREFIX/mime/packages/$APP_ID.xml"
install -Dm644 "$HERE/share/metainfo/$APP_ID.metainfo.xml" "$PREFIX/metainfo/$APP_ID.metainfo.xml"
(cd "$HERE/share" && find icons -name "$APP_ID.*" -exec install -Dm644 {} "$PREFIX/{}" \;)
# The entry must start this bundle wherever it was unpacked.
mkdir -p "$(dirname "$DESKTOP")"
sed -e "s|^Exec=workbench|Exec=\"$HERE/workbench\"|" -e "s|^TryExec=workbench|TryExec=$HERE/workbench|" \
    "$HERE/share/applications/torch-workbench.desktop" >"$DESKTOP"
refresh
echo "Installed Torch Workbench's desktop entry into $PREFIX (undo: $0 --uninstall)"
