"""Running the user's model code: import a file once per content (after the import gate agrees),
and report its errors as the user's own: their file, line and exception, never our internals."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from workbench.engine.errors import ModelCodeError
from workbench.engine.model_source import IMPORTED, ModelReference
from workbench.engine.module_trust import file_digest

ImportGate = Callable[[Path, str], bool]  # (file, content hash) -> may it be imported?
MAX_MESSAGE_LINES = 6
_ENGINE_FOLDER = str(Path(__file__).resolve().parents[1])  # workbench/
_INTERNAL = re.compile(r"(^<frozen |[/\\](torch|importlib|torchao)[/\\])")


class UntrustedCodeError(ModelCodeError):
    """The import gate refused a file: the user has not agreed to run this content."""


@dataclass(frozen=True)
class LoadedCode:
    """An imported model module, the file it came from and the hash of the content run."""

    module: ModuleType
    path: Path | None
    digest: str


_modules: dict[tuple[str, str], ModuleType] = {}
_gate: ImportGate | None = None


def set_import_gate(gate: ImportGate | None) -> ImportGate | None:
    """Ask `gate` before importing any model file (None: import what the experiment names, as
    the command line does); returns the gate it replaces. The window installs
    `ModuleTrust(settings).allows`, so no background work imports a file unasked."""
    global _gate
    previous, _gate = _gate, gate
    return previous


def import_gate() -> ImportGate | None:
    return _gate


# --------------------------------------------------------------------------- importing


def load_code(reference: ModelReference) -> LoadedCode:
    """Import what `reference` names (a .py file or an importable module)."""
    if reference.kind == IMPORTED:
        assert reference.module_name is not None
        return _import_named(reference.module_name)
    assert reference.path is not None
    return import_file(reference.path)


def import_file(path: Path) -> LoadedCode:
    """Import a Python file as a module, once per content: the same bytes give the same module
    (and the same classes); a changed file is imported afresh. Exactly the bytes hashed run."""
    path = Path(path).absolute()
    if not path.is_file():
        raise ModelCodeError(
            f"{shown_path(path)}: no such model file; check model.module (a file is relative "
            "to the experiment file)",
            str(path),
        )
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ModelCodeError(f"{shown_path(path)}: cannot read the model file ({exc})") from None
    digest = hashlib.sha256(source).hexdigest()  # the agreed content is what runs
    _check_gate(path, digest)
    cached = _modules.get((str(path), digest))
    if cached is not None:
        return LoadedCode(cached, path, digest)
    name = f"_workbench_model_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing in the user's file look it up there
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
        with _folder_on_path(path.parent):  # `import helpers` next to the file works
            exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        del sys.modules[name]
        raise code_error(exc, [path], f"importing {shown_path(path)}") from None
    _modules[(str(path), digest)] = module
    return LoadedCode(module, path, digest)


def _import_named(name: str) -> LoadedCode:
    top = name.split(".")[0]
    try:
        found = importlib.util.find_spec(top)  # finds the package without running it
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ModelCodeError(
            f"model.module: no module named {top!r} can be imported here; install it, or name "
            f'the file instead, like "models/net.py:Net" (relative to the experiment file)'
        )
    origin = Path(found.origin) if found.origin and found.has_location else None
    if origin is not None:
        _check_gate(origin, file_digest(origin))
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise ModelCodeError(
                f"model.module: no module named {exc.name!r} can be imported here; check the "
                'name, or name the file instead, like "models/net.py:Net"'
            ) from None
        raise code_error(exc, [], f"importing {name}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        raise code_error(exc, [], f"importing {name}") from None
    file = getattr(module, "__file__", None)
    path = Path(file) if file else None
    return LoadedCode(module, path, file_digest(path) if path is not None else "")


def _check_gate(path: Path, digest: str) -> None:
    if _gate is not None and not _gate(path, digest):
        raise UntrustedCodeError(
            f"{shown_path(path)}: not imported: running a project's Python file runs its code, "
            "and this content has not been agreed to; open it with File > Open Model Code to "
            "agree, or train it with `workbench train` on the command line",
            str(path),
        )


@contextlib.contextmanager
def _folder_on_path(folder: Path) -> Iterator[None]:
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


# --------------------------------------------------------------------------- finding the model


def find_target(loaded: LoadedCode, reference: ModelReference) -> Callable[..., Any]:
    """The class or factory function the reference names, or a ModelCodeError that lists what
    the module defines (with a did-you-mean)."""
    assert reference.attribute is not None
    origin = _origin(loaded, reference)
    namespace = vars(loaded.module)
    target = namespace.get(reference.attribute)
    if target is None:
        defined = defined_names(loaded.module)
        close = difflib.get_close_matches(reference.attribute, defined, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = f"; it defines: {', '.join(defined)}" if defined else "; it defines none"
        raise ModelCodeError(
            f"{origin} has no class or function {reference.attribute!r}{hint}{listing}",
            _path_text(loaded),
        )
    if not callable(target):
        raise ModelCodeError(
            f"{origin}:{reference.attribute} is a {type(target).__name__}, not a class or "
            "function; name the nn.Module class, or a function that returns the model",
            _path_text(loaded),
        )
    return target  # type: ignore[no-any-return]


def defined_names(module: ModuleType) -> list[str]:
    """Public classes and functions the module itself defines (not those it imports)."""
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    ]


def check_arguments(
    target: Callable[..., Any], kwargs: Mapping[str, Any], label: str, loaded: LoadedCode
) -> None:
    """Refuse kwargs the signature cannot take, naming the parameters it does take."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    parameters = [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    names = [p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY]
    accepted = ", ".join(_parameter_text(p) for p in parameters) or "no parameters"
    unknown = [key for key in kwargs if key not in names and not takes_any]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ModelCodeError(
            f"model.kwargs: {label} takes no parameter {unknown[0]!r}{hint}; it takes: {accepted}",
            _path_text(loaded),
        )
    try:
        signature.bind(**kwargs)
    except TypeError:
        missing = [
            p.name
            for p in parameters
            if p.default is inspect.Parameter.empty and p.name not in kwargs
        ]
        needed = ", ".join(missing) if missing else "other arguments"
        raise ModelCodeError(
            f"model.kwargs: {label} needs {needed}; set them in [model] kwargs, like "
            f"kwargs = {{ {missing[0] if missing else 'name'} = ... }}; it takes: {accepted}",
            _path_text(loaded),
        ) from None


def _parameter_text(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty:
        return parameter.name
    return f"{parameter.name}={parameter.default!r}"


def _origin(loaded: LoadedCode, reference: ModelReference) -> str:
    if reference.kind == IMPORTED:
        return str(reference.module_name)
    return shown_path(loaded.path) if loaded.path is not None else str(reference.text)


def _path_text(loaded: LoadedCode) -> str | None:
    return str(loaded.path) if loaded.path is not None else None


# --------------------------------------------------------------------------- errors


def code_error(exc: BaseException, files: Collection[Path], during: str) -> ModelCodeError:
    """The exception as the user's error: where in their code (the deepest frame in `files`,
    else the deepest frame outside torch and workbench), the exception, and what was running."""
    if isinstance(exc, ModelCodeError):
        return exc
    wanted = {str(Path(file).absolute()) for file in files}
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return _syntax_error(exc, during)
    frame = user_frame(exc, wanted)
    what = exception_text(exc)
    if frame is None:
        return ModelCodeError(f"{what}\n(while {during})")
    where = f"{shown_path(Path(frame.filename))}, line {frame.lineno}, in {frame.name}"
    code = f"\n    {frame.line.strip()}" if frame.line else ""
    return ModelCodeError(
        f"{where}: {what}{code}\n(while {during}; the error is in your model code)",
        frame.filename,
        frame.lineno,
    )


def user_frame(exc: BaseException, files: Collection[str] = ()) -> traceback.FrameSummary | None:
    """The deepest traceback frame in `files`; without one there, the deepest frame that is
    neither workbench's, torch's nor the import machinery's."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_files = [f for f in frames if str(Path(f.filename).absolute()) in files]
    if in_files:
        return in_files[-1]
    outside = [
        f
        for f in frames
        if not f.filename.startswith(_ENGINE_FOLDER) and not _INTERNAL.search(f.filename)
    ]
    return outside[-1] if outside else None


def _syntax_error(exc: SyntaxError, during: str) -> ModelCodeError:
    assert exc.filename is not None
    where = f"{shown_path(Path(exc.filename))}, line {exc.lineno}"
    text = (exc.text or "").rstrip("\n")
    shown = ""
    if text.strip():
        indent = len(text) - len(text.lstrip())
        caret = " " * max((exc.offset or 1) - 1 - indent, 0) + "^"
        shown = f"\n    {text.strip()}\n    {caret}"
    return ModelCodeError(
        f"{where}: {type(exc).__name__}: {exc.msg}{shown}\n(while {during}; the error is in "
        "your model code)",
        str(Path(exc.filename).absolute()),
        exc.lineno,
    )


def exception_text(exc: BaseException) -> str:
    """`RuntimeError: message`, the message cut to its first few lines."""
    lines = str(exc).strip().splitlines() or [""]
    message = "\n".join(lines[:MAX_MESSAGE_LINES]) + (
        " ..." if len(lines) > MAX_MESSAGE_LINES else ""
    )
    return f"{type(exc).__name__}: {message}".rstrip(": ")


def shown_path(path: Path | str | None) -> str:
    """The path relative to the current folder when it lies below it, else as it is."""
    if path is None:
        return "<unknown file>"
    path = Path(path)
    with contextlib.suppress(ValueError, OSError):
        return str(path.absolute().relative_to(Path.cwd()))
    return str(path)
