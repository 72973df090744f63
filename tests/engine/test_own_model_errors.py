"""Errors in the user's model code are theirs: each names their file and line, never ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.own_models import MODELS, write_project
from workbench.cli import main
from workbench.engine.errors import ExperimentError, ModelBuildError, ModelCodeError
from workbench.engine.experiment import load_experiment, parse_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.trainer import Trainer

SYNTAX = """import torch
from torch import nn


class Net(nn.Module)
    def __init__(self):
        super().__init__()
"""

RAISES_IN_INIT = """from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.scale = 1 / 0
"""

WRONG_SHAPE = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc(x)
"""

RAISES_IN_FORWARD = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(60, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc(x)
"""


def project(folder: Path, source: str, module: str = "models/net.py:Net", **model: object) -> Path:
    """An experiment naming `models/net.py` written with `source`; returns the .toml path."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "models" / "net.py").write_text(source, encoding="utf-8")
    extra = "".join(f"{key} = {value}\n" for key, value in model.items())
    path = folder / "exp.toml"
    path.write_text(
        f'[model]\nmodule = "{module}"\n{extra}\n[data]\nname = "digits"\n\n'
        '[train]\nepochs = 1\nloss = "cross_entropy"\ndevice = "cpu"\n',
        encoding="utf-8",
    )
    return path


def train_error(path: Path) -> ModelBuildError:
    with pytest.raises(ModelBuildError) as caught:
        Trainer(load_experiment(path)).prepare()
    return caught.value


def test_a_syntax_error_names_the_file_the_line_and_shows_it(tmp_path: Path) -> None:
    error = train_error(project(tmp_path, SYNTAX))
    assert isinstance(error, ModelCodeError)
    assert error.line == 5 and error.path == str(tmp_path / "models" / "net.py")
    text = str(error)
    assert text.startswith(f"{tmp_path / 'models' / 'net.py'}, line 5: SyntaxError: expected ':'")
    assert "    class Net(nn.Module)\n" in text
    assert "importing" in text and "your model code" in text


def test_an_exception_in_init_names_the_line_of_init(tmp_path: Path) -> None:
    error = train_error(project(tmp_path, RAISES_IN_INIT))
    assert isinstance(error, ModelCodeError) and error.line == 8
    assert ", line 8, in __init__: ZeroDivisionError: division by zero" in str(error)
    assert "self.scale = 1 / 0" in str(error) and "creating Net()" in str(error)


def test_an_exception_in_forward_names_the_line_of_forward(tmp_path: Path) -> None:
    error = train_error(project(tmp_path, RAISES_IN_FORWARD))
    assert isinstance(error, ModelCodeError) and error.line == 12
    text = str(error)
    assert ", line 12, in forward: RuntimeError: mat1 and mat2 shapes cannot be multiplied" in text
    assert "return self.fc(x)" in text and "[1, 8, 8]" in text


def test_an_output_that_does_not_fit_the_loss_is_explained_before_training(
    tmp_path: Path,
) -> None:
    error = train_error(project(tmp_path, WRONG_SHAPE))
    assert isinstance(error, ModelCodeError) and error.line == 12  # forward's return
    assert str(error).endswith(
        "net.py, line 12: Net from net.py returns [5] float32 per sample, but digits has 10 "
        'classes and train.loss = "cross_entropy" needs a score for each: [10]; make the last '
        "layer give 10 outputs"
    )


@pytest.mark.parametrize(
    ("forward", "expected"),
    [
        ("return self.fc(torch.flatten(x, 1)).argmax(1)", "needs floating-point scores"),
        ("return self.fc(torch.flatten(x, 1)).view(-1)", "keep the batch as the first dimension"),
        ("return x", "flatten it first (torch.flatten(x, 1))"),
        ("return (self.fc(torch.flatten(x, 1)),)", "forward returns a tuple"),
    ],
)
def test_outputs_the_loss_cannot_take_are_explained(
    tmp_path: Path, forward: str, expected: str
) -> None:
    source = RAISES_IN_FORWARD.replace("nn.Linear(60, 10)", "nn.Linear(64, 10)").replace(
        "x = torch.flatten(x, 1)\n        return self.fc(x)", forward
    )
    error = train_error(project(tmp_path, source))
    assert expected in str(error) and "net.py, line" in str(error)


def test_a_missing_class_is_named_with_what_the_file_defines(tmp_path: Path) -> None:
    path = project(tmp_path, WRONG_SHAPE, module="models/net.py:Nte")
    error = train_error(path)
    assert str(error) == (
        f"{tmp_path / 'models' / 'net.py'} has no class or function 'Nte' (did you mean 'Net'?); "
        "it defines: Net"
    )


def test_a_class_that_is_not_a_module_and_a_factory_that_returns_none(tmp_path: Path) -> None:
    source = "class Config:\n    pass\n\n\ndef make():\n    pass\n"
    assert "Config is a class but not a torch.nn.Module" in str(
        train_error(project(tmp_path, source, module="models/net.py:Config"))
    )
    assert "make() returned a NoneType, not a torch.nn.Module" in str(
        train_error(project(tmp_path, source, module="models/net.py:make"))
    )


def test_kwargs_the_signature_refuses_list_what_it_takes(tmp_path: Path) -> None:
    source = MODELS["factory"].source
    error = train_error(
        project(tmp_path, source, module="models/net.py:make_mlp", kwargs="{ hiden = 3 }")
    )
    assert str(error) == (
        "model.kwargs: make_mlp takes no parameter 'hiden' (did you mean 'hidden'?); it takes: "
        "hidden=32, depth=1, num_classes=10"
    )
    needs = "def make(width):\n    from torch import nn\n    return nn.Linear(width, 10)\n"
    assert "make needs width; set them in [model] kwargs" in str(
        train_error(project(tmp_path, needs, module="models/net.py:make"))
    )


def test_a_missing_file_or_module_is_named(tmp_path: Path) -> None:
    missing = project(tmp_path, WRONG_SHAPE, module="models/nope.py:Net")
    assert "nope.py: no such model file; check model.module" in str(train_error(missing))
    unknown = project(tmp_path, WRONG_SHAPE, module="no_such_package.models:Net")
    assert "no module named 'no_such_package' can be imported here" in str(train_error(unknown))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            'module = "net.py:Net"\nlayers = [{ type = "ReLU" }]',
            "model.module and model.layers: a model comes either from your code (module) or "
            "from layers, not both",
        ),
        ('module = "net.py"', 'name the class or function after a colon, like "net.py:Net"'),
        ('module = "net.py:1Net"', "'1Net' is not a Python name"),
        ('module = "a/b:Net"', "is neither a .py file nor an importable module name"),
        ('module = "m.pt2:Net"', "a .pt2 file holds one program"),
        ("kwargs = { a = 1 }", "model.kwargs: kwargs are passed to model.module"),
        ('module = "m.pt2"\nkwargs = { a = 1 }', "a .pt2 program is built already"),
        ('module = "net.py:Net"\nkwargs = { "a b" = 1 }', "model.kwargs.'a b': not a parameter"),
    ],
)
def test_the_file_is_checked_when_read(model: str, expected: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(f"[model]\n{model}\n", source="exp.toml")
    assert expected in str(caught.value) and str(caught.value).startswith("exp.toml: model.")


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("source", "line", "verbs"),
    [
        (SYNTAX, 5, ("train", "summary", "export-script")),
        (RAISES_IN_INIT, 8, ("train", "summary", "export-script")),
        (WRONG_SHAPE, 12, ("train",)),  # a model of 5 outputs is fine to summarise
    ],
)
def test_the_command_line_exits_2_with_the_users_file_and_line_and_no_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    line: int,
    verbs: tuple[str, ...],
) -> None:
    path = project(tmp_path, source)
    for verb in verbs:
        assert main([verb, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"net.py, line {line}" in err
        assert "Traceback" not in err and "workbench/engine" not in err
        assert "site-packages" not in err


def test_a_model_error_in_training_names_the_users_line(tmp_path: Path) -> None:
    """A forward that only fails on the real data (here: after the first epoch's batches)."""
    source = WRONG_SHAPE.replace("nn.Linear(64, 5)", "nn.Linear(64, 10)").replace(
        "x = torch.flatten(x, 1)\n",
        "x = torch.flatten(x, 1)\n        if len(x) == 64:\n            raise ValueError('no full batches')\n",
    )
    path = project(tmp_path, source)
    with pytest.raises(Exception, match=r"net\.py, line 13, in forward: ValueError: no full"):
        Trainer(load_experiment(path)).fit()


def test_building_names_the_users_file_not_ours(tmp_path: Path) -> None:
    path = write_project(tmp_path, MODELS["cnn"])
    built = build_experiment_model(load_experiment(path))
    assert built.code is not None and built.code.path == tmp_path / "models" / "net.py"
    assert built.code.label == "Net from net.py" and len(built.code.digest) == 64


def test_a_factory_output_that_does_not_fit_points_at_the_factory_not_at_torch(
    tmp_path: Path,
) -> None:
    source = MODELS["factory"].source.lstrip()
    path = project(tmp_path, source, module="models/net.py:make_mlp", kwargs="{ num_classes = 5 }")
    error = train_error(path)
    assert isinstance(error, ModelCodeError) and error.line == 4  # def make_mlp(...)
    assert str(error).startswith(f"{tmp_path / 'models' / 'net.py'}, line 4: make_mlp from net.py")
    assert "container.py" not in str(error) and "returns [5] float32 per sample" in str(error)
