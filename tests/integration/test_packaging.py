"""Packaging: desktop entry, MIME types, AppStream metadata, icons, the bundle's entry point, and
(marked slow, for `make package-check`) the built bundle itself, started as a user would."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import ModuleType

import pytest
from PySide6.QtGui import QImage
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from workbench import __version__

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "resources" / "icons"
APP_ID = "io.github.torchworkbench.TorchWorkbench"
DESKTOP = PACKAGING / "torch-workbench.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"
MIME = PACKAGING / f"{APP_ID}.mime.xml"
MIME_NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
ACTION_ICONS = (
    "train", "pause", "stop", "step", "add", "remove", "open", "checkpoint", "save", "quantize",
    "profile",
)  # fmt: skip
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="freedesktop files are for Linux")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian: apt-get install desktop-file-utils appstream)"
        )
    return path


def desktop_entry(path: Path = DESKTOP) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def mime_globs() -> dict[str, list[str]]:
    tree = ElementTree.parse(MIME)
    return {
        node.attrib["type"]: [glob.attrib["pattern"] for glob in node.findall("m:glob", MIME_NS)]
        for node in tree.getroot().findall("m:mime-type", MIME_NS)
    }


# --------------------------------------------------------------------------- desktop integration


def test_desktop_entry_passes_desktop_file_validate() -> None:
    result = subprocess.run(
        [tool("desktop-file-validate"), str(DESKTOP)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout.lower() and "warning" not in result.stdout.lower()


def test_desktop_entry_opens_checkpoints_and_experiments_with_workbench_file() -> None:
    entry = desktop_entry()
    assert entry["Exec"] == "workbench %f"
    assert entry["Icon"] == APP_ID
    mime_types = set(filter(None, entry["MimeType"].split(";")))
    assert mime_types == {*mime_globs(), "application/toml"}


def test_mime_types_cover_pth_pt_ckpt_and_safetensors() -> None:
    globs = mime_globs()
    assert globs["application/x-pytorch"] == ["*.pth", "*.pt", "*.ckpt"]
    assert globs["application/x-safetensors"] == ["*.safetensors"]


def test_mime_xml_compiles_with_update_mime_database(tmp_path: Path) -> None:
    packages = tmp_path / "mime" / "packages"
    packages.mkdir(parents=True)
    shutil.copy(MIME, packages / MIME.name)
    subprocess.run(
        [tool("update-mime-database"), str(tmp_path / "mime")], capture_output=True, check=True
    )
    globs = (tmp_path / "mime" / "globs2").read_text(encoding="utf-8")
    for line in ("application/x-pytorch:*.pth", "application/x-safetensors:*.safetensors"):
        assert line in globs


def test_metainfo_passes_appstreamcli_validate() -> None:
    result = subprocess.run(
        [tool("appstreamcli"), "validate", "--no-net", "--explain", str(METAINFO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^[EW]: ", result.stdout, re.MULTILINE), result.stdout


def test_metainfo_matches_the_desktop_entry_and_the_app() -> None:
    root = ElementTree.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert root.find("releases/release").attrib["version"] == __version__  # type: ignore[union-attr]
    media = {node.text for node in root.findall("provides/mediatype")}
    assert media == set(filter(None, desktop_entry()["MimeType"].split(";")))
    assert [node.text for node in root.findall("provides/binary")] == ["workbench"]


@posix_only
def test_installing_the_desktop_entry_points_it_at_the_bundle(tmp_path: Path) -> None:
    bundle, prefix = tmp_path / "unpacked bundle", tmp_path / "prefix"
    subprocess.run([str(PACKAGING / "stage-desktop-files.sh"), str(bundle)], check=True)
    (bundle / "workbench").write_text("#!/bin/sh\n", encoding="utf-8")
    (bundle / "workbench").chmod(0o755)
    env = {**os.environ, "PREFIX": str(prefix)}
    subprocess.run(
        [str(bundle / "install-desktop-entry.sh")], env=env, check=True, capture_output=True
    )
    installed = prefix / "share" / "applications" / "torch-workbench.desktop"
    assert desktop_entry(installed)["Exec"] == f'"{bundle}/workbench" %f'
    for size in (16, 48, 256):
        assert (prefix / f"share/icons/hicolor/{size}x{size}/apps/{APP_ID}.png").is_file()
    assert (prefix / f"share/mime/packages/{APP_ID}.xml").is_file()
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(installed)], check=True)
    subprocess.run(
        [str(bundle / "install-desktop-entry.sh"), "--uninstall"],
        env=env,
        check=True,
        capture_output=True,
    )
    assert not installed.exists()


# --------------------------------------------------------------------------- icons


def read_ico_sizes(data: bytes) -> list[int]:
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind) == (0, 1)
    sizes = []
    for index in range(count):
        width, _, _, _, _, _, length, offset = struct.unpack_from("<BBBBHHII", data, 6 + 16 * index)
        assert data[offset : offset + 8] == b"\x89PNG\r\n\x1a\n"
        assert offset + length <= len(data)
        sizes.append(width or 256)
    return sizes


def read_icns_types(data: bytes) -> dict[str, int]:
    assert data[:4] == b"icns"
    assert struct.unpack_from(">I", data, 4)[0] == len(data)
    found, offset = {}, 8
    while offset < len(data):
        kind, length = (
            data[offset : offset + 4].decode(),
            struct.unpack_from(">I", data, offset + 4)[0],
        )
        image = QImage.fromData(data[offset + 8 : offset + length], "PNG")
        found[kind] = image.width()
        offset += length
    return found


def test_app_icon_pngs_have_their_sizes(qapp: QApplication) -> None:
    for size in (16, 32, 48, 64, 128, 256, 512):
        image = QImage(str(ICONS / f"workbench-{size}.png"))
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()


def test_ico_and_icns_hold_every_size(qapp: QApplication) -> None:
    assert read_ico_sizes((ICONS / "workbench.ico").read_bytes()) == [16, 32, 48, 64, 128, 256]
    icns = read_icns_types((ICONS / "workbench.icns").read_bytes())
    assert icns["icp4"] == 16 and icns["ic07"] == 128 and icns["ic10"] == 1024
    assert icns["ic11"] == 32  # 16 pt at 2x


def test_svg_icons_are_valid(qapp: QApplication) -> None:
    for name in ("workbench", *ACTION_ICONS):
        assert QSvgRenderer(str(ICONS / f"{name}.svg")).isValid(), name


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_icons_renders_every_file_with_qt_alone(qapp: QApplication, tmp_path: Path) -> None:
    written = load_script("make_icons").make_icons(ICONS / "workbench.svg", tmp_path)
    names = sorted(path.name for path in written)
    assert names == sorted(path.name for path in ICONS.glob("workbench*") if path.suffix != ".svg")
    assert read_ico_sizes((tmp_path / "workbench.ico").read_bytes()) == [16, 32, 48, 64, 128, 256]


# --------------------------------------------------------------------------- the bundle's entry


def test_entry_point_runs_python_style_module_and_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    entry = load_script("workbench_main")
    monkeypatch.setattr(sys, "argv", ["workbench"])
    (tmp_path / "greeter.py").write_text(
        "import sys\nif __name__ == '__main__':\n    print('hello', sys.argv[1:])\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert entry.run_like_python(["-u", "-m", "greeter", "--flag", "x"]) == 0
    assert capsys.readouterr().out.strip() == "hello ['--flag', 'x']"
    assert entry.run_like_python(["-c", "import sys; print(sys.argv)", "x"]) == 0
    assert capsys.readouterr().out.strip() == "['-c', 'x']"
    assert entry.run_like_python(["-c", "raise SystemExit(3)"]) == 3
    assert entry.run_like_python(["-c", "1/0"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["train", "x.toml"], ["--version"], ["model.pth"], ["-m"]])
def test_entry_point_leaves_workbench_arguments_to_the_cli(argv: list[str]) -> None:
    assert load_script("workbench_main").run_like_python(argv) is None


def test_spec_names_files_that_exist() -> None:
    spec = (PACKAGING / "workbench.spec").read_text(encoding="utf-8")
    compile(spec, "workbench.spec", "exec")
    assert '"packaging" / "workbench_main.py"' in spec
    for icon in ("workbench.ico", "workbench.icns"):
        assert icon in spec and (ICONS / icon).is_file()


# --------------------------------------------------------------------------- the built bundle


def bundle_executable() -> Path:
    """dist/workbench/workbench (or $WORKBENCH_BUNDLE); a skip, or with
    WORKBENCH_REQUIRE_BUNDLE=1 (make package-check) a failure, when there is none."""
    folder = Path(os.environ.get("WORKBENCH_BUNDLE", ROOT / "dist" / "workbench"))
    executable = folder / ("workbench.exe" if sys.platform == "win32" else "workbench")
    if not executable.is_file():
        message = f"no bundle at {folder}: build it with `make package` first"
        if os.environ.get("WORKBENCH_REQUIRE_BUNDLE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return executable


def run_bundle(executable: Path, *args: str, home: Path, timeout: float = 300) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV"))  # the bundle must need no Python
    }
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
        OMP_NUM_THREADS="1",
    )
    result = subprocess.run(
        [str(executable), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_the_built_bundle_starts_trains_and_reports(tmp_path: Path) -> None:
    executable = bundle_executable()
    internal = executable.parent / "_internal"
    home = tmp_path / "home"
    home.mkdir()

    version = run_bundle(executable, "--version", home=home)
    assert version.startswith(f"workbench {__version__}\n"), version
    for name in ("torch 2.", "torchvision 0.", "PySide6 6.", "CUDA", "cuDNN", "MPS"):
        assert name in version, version
    assert "not installed" not in version

    startup = run_bundle(executable, "--startup-check", home=home)
    assert re.search(
        r"^window shown after \d+\.\d\d s, ready after \d+\.\d\d s: .*Torch Workbench",
        startup,
        re.MULTILINE,
    )

    preset = internal / "resources" / "presets" / "toy-mlp.toml"
    out = tmp_path / "run"
    trained = run_bundle(executable, "train", str(preset), "--out", str(out), home=home)
    assert len(re.findall(r"^Epoch: \d{3}/003 \| Batch \d{3}/002 \|", trained, re.MULTILINE)) == 6
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["train_accuracy"] == 1.0 and summary["val_accuracy"] == 1.0
    assert summary["epochs_completed"] == 3

    inspected = run_bundle(executable, "inspect", str(out / "model.pth"), home=home)
    assert "0.weight" in inspected
    described = run_bundle(executable, "summary", str(preset), home=home)
    assert "Total number of trainable model parameters: 752" in described
    digits = run_bundle(
        executable, "summary", str(preset.with_name("digits-mlp.toml")), home=home
    )  # scikit-learn's bundled digits data must be found
    assert "Total number of trainable model parameters:" in digits
    diagnostics = run_bundle(executable, "devices", "--verbose", home=home)
    assert "(bundle at " in diagnostics and "\nPrecisions\n" in diagnostics
    # Python-style starts, which torchrun's ranks and the trusted-checkpoint loader rely on
    unsafe = tmp_path / "unsafe.pt"
    make_unsafe = (
        "import argparse, sys, torch; from torchvision.extension import _has_ops; "
        "torch.save({'w': torch.ones(2), 'args': argparse.Namespace(lr=1)}, sys.argv[1]); "
        "print(_has_ops())"
    )
    assert run_bundle(executable, "-c", make_unsafe, str(unsafe), home=home).strip() == "True"
    trusted = run_bundle(executable, "inspect", str(unsafe), "--trust-this-file", home=home)
    assert "in a separate process" in trusted and "float32" in trusted
    ranks = run_bundle(
        executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "--local-addr=127.0.0.1",
        "-m",
        "platform",
        home=home,
    )
    assert len([line for line in ranks.splitlines() if line.startswith(("Linux", "macOS"))]) == 2

    assert not (internal / "triton").exists()
    assert not list(internal.rglob("libQt6Quick.so*")) and not list(internal.rglob("libQt6Qml.so*"))
    size = sum(
        path.lstat().st_size
        for path in executable.parent.rglob("*")
        if path.is_file() and not path.is_symlink()  # the links to libraries count once
    )
    print(f"\nbundle {executable.parent}: {size / 2**30:.2f} GiB")
