"""Show the code: the exported script runs without Torch Workbench and trains the same thing."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from tests.engine.test_datasets_files import fake_mnist
from tests.engine.test_graph_consumers import residual_on_digits
from tests.specs import awkward_graph, gated_graph, nested_blocks
from workbench.cli import build_parser
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import (
    OPTIMIZERS,
    SCHEDULERS,
    WITHOUT_MOMENTUM,
    DDPSpec,
    EarlyStoppingSpec,
    Experiment,
    LayerSpec,
    ModelSpec,
    SchedulerSpec,
    load_experiment,
    parse_experiment,
    save_experiment,
)
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.optimization import make_optimizer, make_scheduler
from workbench.engine.script_export import export_script, write_script
from workbench.engine.trainer import Trainer

FINAL = re.compile(r"Final validation accuracy: ([0-9.]+)%")
EPOCH = re.compile(r"Val Loss: ([0-9.]+)")
Run = tuple[Experiment, str, Path]  # experiment, what its script printed, its folder
Runs = dict[str, Run]
RUFF = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))


def preset(name: str, **train: object) -> Experiment:
    experiment = load_experiment(PRESETS / f"{name}.toml")
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **train))


# Runs every exported script in ONE fresh interpreter (torch imports once), each in its own
# folder, with workbench made unimportable: the scripts must stand alone.
DRIVER = """
import contextlib, os, runpy, sys, traceback
sys.modules["workbench"] = None  # `import workbench` raises ImportError from here on
for folder in sys.argv[1:]:
    os.chdir(folder)
    with open("stdout.txt", "w") as out, contextlib.redirect_stdout(out):
        try:
            runpy.run_path("train.py", run_name="__main__")
        except BaseException:
            traceback.print_exc(file=out)
"""


def csv_experiment(folder: Path) -> Experiment:
    rows = ["a,b,label"] + [
        f"{i % 7},{(i * 3) % 11 - 5},{'yes' if (i % 7) + ((i * 3) % 11 - 5) > 3 else 'no'}"
        for i in range(60)
    ]
    table = folder / "table.csv"
    table.write_text("\n".join(rows) + "\n")
    moons = load_experiment(PRESETS / "moons-mlp.toml")
    layers = (
        LayerSpec("Linear", {"out_features": 8}),
        LayerSpec("ReLU"),
        LayerSpec("Linear", {"out_features": 2}),
    )
    return Experiment(
        model=ModelSpec(layers=layers),
        data=dataclasses.replace(
            moons.data, name="csv", path=str(table), options={"standardize": True}, batch_size=8
        ),
        train=dataclasses.replace(
            moons.train, epochs=3, device="cpu", loss="mse", optimizer="adamw", weight_decay=0.01
        ),
    )


def mnist_experiment(folder: Path) -> Experiment:
    fake_mnist(folder, train=24, test=8)
    # Named like PyTorch's example: the script's model saves `conv1.weight`, as the engine's.
    experiment = preset("mnist-cnn", epochs=2, device="cpu")
    data = dataclasses.replace(experiment.data, root=str(folder), batch_size=8)
    return dataclasses.replace(experiment, data=data)


def kitchen_sink() -> Experiment:
    return preset(
        "moons-mlp",
        epochs=4,
        device="cpu",
        precision="bf16-mixed",
        accumulate_grad_batches=3,
        gradient_clip_val=0.5,
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        lr=0.05,
        scheduler=SchedulerSpec(name="onecycle"),
        early_stopping=EarlyStoppingSpec(monitor="val_accuracy", patience=2),
    )


def ddp_experiment() -> Experiment:
    return preset(
        "moons-mlp", epochs=2, device="cpu", accumulate_grad_batches=2, ddp=DDPSpec(enabled=True)
    )


def run_standalone(root: Path, scripts: dict[str, str]) -> None:
    """Write each script as `root/NAME/train.py` and run them all with DRIVER; each folder's
    stdout.txt keeps what its script printed (a traceback included)."""
    folders = []
    for name, script in scripts.items():
        folder = root / name
        folder.mkdir()
        (folder / "train.py").write_text(script, encoding="utf-8")
        folders.append(folder)
    run_scripts_in(root, folders)


def run_scripts_in(root: Path, folders: list[Path]) -> None:
    """Run each folder's train.py with DRIVER, workbench unimportable; stdout.txt per folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, folders)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Each case: (experiment, what its script printed, its folder)."""
    root = tmp_path_factory.mktemp("scripts")
    cases = {
        "toy-mlp": preset("toy-mlp"),
        "digits-mlp": preset("digits-mlp", epochs=3),
        "mnist-cnn": mnist_experiment(root / "mnist-data"),
        "kitchen-sink": kitchen_sink(),
        "ddp": ddp_experiment(),
        "csv": csv_experiment(root),
        "resnet": residual_on_digits(PRESETS),
        "gated-graph": gated_graph(),
    }
    run_standalone(root, {name: export_script(experiment) for name, experiment in cases.items()})
    return {
        name: (experiment, (root / name / "stdout.txt").read_text(), root / name)
        for name, experiment in cases.items()
    }


ENGINE_RUNS: dict[Path, dict[str, object]] = {}


def engine_run(experiment: Experiment, folder: Path) -> dict[str, object]:
    """The engine's summary of `experiment`, trained once into `folder/engine` on one CPU
    thread as the scripts run: sums split over threads round differently, and BatchNorm
    under Adam grows that into points of accuracy within two epochs."""
    if folder not in ENGINE_RUNS:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            ENGINE_RUNS[folder] = Trainer(experiment, out_dir=folder / "engine").fit()
        finally:
            torch.set_num_threads(threads)
    return ENGINE_RUNS[folder]


def assert_same_run(run: Run, experiment: Experiment | None = None) -> str:
    """The script printed the engine's final accuracy (within 1 point) and validation loss,
    and saved the keys the engine saves (the engine's run is kept in `folder/engine`)."""
    script_experiment, output, folder = run
    script = (folder / "train.py").read_text()
    assert "import workbench" not in script and "from workbench" not in script
    assert "Traceback" not in output, output[-3000:]
    summary = engine_run(experiment or script_experiment, folder)
    final = FINAL.search(output)
    assert final is not None, output[-2000:]
    assert float(final.group(1)) == pytest.approx(100 * float(summary["val_accuracy"]), abs=1.0)
    last_val_loss = float(EPOCH.findall(output)[-1])
    assert last_val_loss == pytest.approx(float(summary["val_loss"]), abs=2e-4)
    weights = torch.load(folder / "model.pth", weights_only=True)
    assert list(weights) == list(torch.load(folder / "engine" / "model.pth", weights_only=True))
    return output


def exported_model(experiment: Experiment, seed: int = 0) -> tuple[torch.nn.Module, str]:
    """The script's build_model() under `seed`, and the script."""
    script = export_script(experiment)
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(script, "train.py", "exec"), namespace)
    torch.manual_seed(seed)
    model = namespace["build_model"]()  # type: ignore[operator]
    assert isinstance(model, torch.nn.Module)
    return model, script


def engine_model(experiment: Experiment, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_experiment_model(experiment).module


def assert_same_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """The same keys in the same order, each tensor equal."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def lint(path: Path) -> str:
    """What ruff finds in the script (pycodestyle, pyflakes, isort, bugbear, pyupgrade)."""
    if not Path(RUFF).exists():
        pytest.skip("ruff is not installed")
    found = subprocess.run(
        [
            RUFF,
            "check",
            "--isolated",
            "--line-length",
            "100",
            "--select",
            "E,F,W,I,B,UP",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    return found.stdout if found.returncode else ""


def test_toy_mlp_script_runs_standalone_and_matches_the_engine(runs: Runs) -> None:
    output = assert_same_run(runs["toy-mlp"])
    assert "Final validation accuracy: 100.00%" in output
    assert "Total number of trainable model parameters: 752" in output


def test_digits_mlp_script_runs_standalone_and_matches_the_engine(runs: Runs) -> None:
    assert_same_run(runs["digits-mlp"])


def test_mnist_cnn_script_with_dropout_scheduler_and_torchvision_files(runs: Runs) -> None:
    output = assert_same_run(runs["mnist-cnn"])
    script = export_script(runs["mnist-cnn"][0])
    assert '("conv1", nn.Conv2d(1, 32, kernel_size=3)),' in script
    assert "return nn.Sequential(OrderedDict(layers))" in script
    weights = torch.load(runs["mnist-cnn"][2] / "model.pth", weights_only=True)
    assert list(weights)[:2] == ["conv1.weight", "conv1.bias"] and "fc2.weight" in weights
    assert "StepLR(optimizer, step_size=1, gamma=0.7)" in script
    assert "LR: 0.7" in output  # the schedule stepped after epoch 1


def test_accumulation_bf16_clipping_onecycle_and_early_stopping_match_the_engine(
    runs: Runs,
) -> None:
    script = export_script(runs["kitchen-sink"][0])
    assert "torch.autocast(device_type=device.type, dtype=torch.bfloat16)" in script
    assert "(loss / ACCUMULATE_GRAD_BATCHES).backward()" in script
    assert "clip_grad_norm_(model.parameters(), GRADIENT_CLIP_VAL)" in script
    assert "OneCycleLR(" in script and "bad_epochs >= 2" in script
    assert_same_run(runs["kitchen-sink"])


def test_ddp_script_is_torchrun_ready_and_runs_as_a_one_process_group(runs: Runs) -> None:
    experiment = runs["ddp"][0]
    script = export_script(experiment)
    assert "torchrun --nproc_per_node=2 train.py" in script
    assert "dist.init_process_group(" in script and "DistributedDataParallel(model)" in script
    assert "model.no_sync()" in script and "sampler.set_epoch(epoch)" in script
    assert "dist.all_reduce(totals)" in script
    # One process: DistributedSampler's permutation is the engine's, so the runs agree.
    single = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, ddp=DDPSpec(enabled=False))
    )
    assert_same_run(runs["ddp"], single)


def test_csv_script_reads_and_standardises_the_table_like_the_engine(runs: Runs) -> None:
    script = export_script(runs["csv"][0])
    assert "nn.functional.mse_loss(output, float_targets(output, target))" in script
    assert "torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)" in script
    assert_same_run(runs["csv"])


def test_the_script_builds_the_engines_model_with_the_same_initial_weights() -> None:
    experiment = preset("mnist-cnn")
    theirs, _ = exported_model(experiment, seed=7)
    ours = engine_model(experiment, seed=7)
    assert str(theirs) == str(ours)
    assert_same_weights(ours, theirs)
    assert next(iter(ours.state_dict())) == "conv1.weight"


# --------------------------------------------------------------------------- graph models


def test_residual_script_runs_standalone_and_matches_the_engine(runs: Runs) -> None:
    output = assert_same_run(runs["resnet"])
    assert "Total number of trainable model parameters: 9690" in output
    script = (runs["resnet"][2] / "train.py").read_text()
    assert "class BasicBlock(nn.Module):" in script
    assert '("layer1", nn.Sequential(BasicBlock(), BasicBlock())),' in script
    assert "        add = bn2 + x\n        relu2 = self.relu2(add)\n" in script


def test_a_state_dict_the_engine_saved_loads_strictly_into_the_exported_residual_net(
    runs: Runs,
) -> None:
    experiment, _, folder = runs["resnet"]
    engine_run(experiment, folder)
    saved = torch.load(folder / "engine" / "model.pth", weights_only=True)
    assert "layer1.1.conv2.weight" in saved and "layer1.0.bn1.running_var" in saved
    theirs, _ = exported_model(experiment)
    theirs.load_state_dict(saved, strict=True)
    ours = engine_model(experiment)
    ours.load_state_dict(saved, strict=True)
    assert_same_weights(engine_model(experiment, seed=3), exported_model(experiment, seed=3)[0])
    batch = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(theirs.eval()(batch), ours.eval()(batch))


def test_a_graph_with_concat_and_mul_exports_as_a_class_and_matches_the_engine(
    runs: Runs,
) -> None:
    assert_same_run(runs["gated-graph"])
    script = (runs["gated-graph"][2] / "train.py").read_text()
    assert "class Net(nn.Module):" in script and "return Net()" in script
    assert "        gated = relu * gate\n" in script
    assert "        both = torch.cat([gated, x], dim=1)\n" in script
    assert "        return fc\n" in script
    assert lint(runs["gated-graph"][2] / "train.py") == ""


def test_layer_names_a_class_cannot_use_as_they_are_still_give_the_engines_keys(
    tmp_path: Path,
) -> None:
    experiment = awkward_graph()
    theirs, script = exported_model(experiment, seed=5)
    ours = engine_model(experiment, seed=5)
    assert_same_weights(ours, theirs)
    assert (
        "self.0.conv1.weight" in ours.state_dict() and "layer1.1.short.weight" in ours.state_dict()
    )
    batch = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(theirs.eval()(batch), ours.eval()(batch))
    # The block's input channels differ between uses: the class takes them as an argument.
    assert "    def __init__(self, in_channels):" in script
    assert "self.layer1 = nn.Sequential(Down(8), Down(4))" in script
    assert 'self.add_module("5", nn.Sigmoid())' in script
    assert (
        "        x_ = self.x(getattr_)\n" in script
        and "l_ = torch.cat([gate, self_], dim=1)" in script
    )
    assert 'hidden = getattr(self, "__hidden")(l_)' in script
    (tmp_path / "train.py").write_text(script)
    assert lint(tmp_path / "train.py") == ""


def test_a_block_inside_a_block_takes_the_sizes_that_differ_as_arguments(tmp_path: Path) -> None:
    experiment = nested_blocks()
    theirs, script = exported_model(experiment, seed=2)
    ours = engine_model(experiment, seed=2)
    assert_same_weights(ours, theirs)
    assert "stage.1.down.0.conv1.weight" in ours.state_dict()
    batch = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(theirs.eval()(batch), ours.eval()(batch))
    assert script.index("class Down(nn.Module):") < script.index("class Stage(nn.Module):")
    assert "self.down = nn.Sequential(Down(in_channels), Down(4))" in script
    assert '("stage", nn.Sequential(Stage(3), Stage(4))),' in script
    assert '("stage2", nn.Sequential(*[Stage(4) for _ in range(3)])),' in script
    (tmp_path / "train.py").write_text(script)
    assert lint(tmp_path / "train.py") == ""


def test_a_block_named_like_a_name_the_script_uses_gets_another_class_name() -> None:
    text = (
        Path(PRESETS / "cifar10-resnet.toml")
        .read_text()
        .replace("BasicBlock", "print")
        .replace('name = "cifar10"', 'name = "digits"')
    )
    experiment = parse_experiment(text)
    theirs, script = exported_model(experiment)
    assert "class printBlock(nn.Module):" in script and "nn.Sequential(printBlock()" in script
    assert_same_weights(engine_model(experiment), theirs)


@pytest.mark.parametrize(
    "layers",
    [
        [
            ("Conv1d", {"out_channels": 4, "kernel_size": 3, "padding": "same"}),
            ("BatchNorm1d", {}),
            ("GELU", {"approximate": "tanh"}),
            ("AdaptiveAvgPool1d", {"output_size": 2}),
            ("Flatten", {}),
            ("Linear", {"out_features": 3, "bias": False}),
            ("Softmax", {"dim": 1}),
        ],
        [
            ("Conv2d", {"out_channels": 4, "kernel_size": [3, 2], "stride": 2}),
            ("MaxPool2d", {"kernel_size": 2, "ceil_mode": True}),
            ("Dropout2d", {"p": 0.1}),
            ("Flatten", {}),
            ("LayerNorm", {}),
            ("LeakyReLU", {"negative_slope": 0.2}),
            ("Linear", {"out_features": 1}),
        ],
    ],
)
def test_every_layer_kind_is_written_as_torch_code_and_the_script_is_lint_clean(
    layers: list[tuple[str, dict[str, object]]], tmp_path: Path
) -> None:
    shape = (1, 12) if layers[0][0] == "Conv1d" else (3, 16, 16)
    experiment = Experiment(
        model=ModelSpec(layers=tuple(LayerSpec(t, p) for t, p in layers), input_shape=shape),
        data=load_experiment(PRESETS / "digits-mlp.toml").data,
        train=dataclasses.replace(
            load_experiment(PRESETS / "digits-mlp.toml").train,
            loss="bce_with_logits",
            precision="16-mixed",
            scheduler=SchedulerSpec(name="reduce_on_plateau"),
            ddp=DDPSpec(enabled=True, nproc_per_node=4),
        ),
    )
    script = export_script(experiment)
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(script, "train.py", "exec"), namespace)
    torch.manual_seed(0)
    theirs = namespace["build_model"]()  # type: ignore[operator]
    torch.manual_seed(0)
    assert str(theirs) == str(build_experiment_model(experiment).module)
    assert "scaler.scale(loss).backward()" in script and "GradScaler" in script
    (tmp_path / "train.py").write_text(script)
    assert lint(tmp_path / "train.py") == ""


@pytest.mark.parametrize(
    "name",
    [
        "toy-mlp",
        "moons-mlp",
        "spirals-mlp",
        "fashion-mnist-mlp",
        "mnist-cnn",
        "cifar10-resnet",
        "tutorial-mlp",
    ],
)
def test_preset_scripts_are_lint_clean(name: str, tmp_path: Path) -> None:
    path = write_script(preset(name), tmp_path / "train.py", f"{name}.toml")
    assert lint(path) == ""
    assert f"exported from {name}.toml" in path.read_text()


def test_export_script_verb_writes_prints_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment_file = tmp_path / "exp.toml"
    save_experiment(preset("toy-mlp"), experiment_file)
    parser = build_parser()
    out = tmp_path / "train.py"
    args = parser.parse_args(["export-script", str(experiment_file), "-o", str(out)])
    assert args.run(args) == 0
    assert out.read_text() == export_script(preset("toy-mlp"), str(experiment_file))
    assert f"run it with: python {out}" in capsys.readouterr().out
    with pytest.raises(ExperimentError, match="--force"):
        args.run(args)
    args = parser.parse_args(["export-script", str(experiment_file)])
    assert args.run(args) == 0
    assert "def build_model():" in capsys.readouterr().out
    args = parser.parse_args(["export-script", str(experiment_file), "-o", str(tmp_path / "x.txt")])
    with pytest.raises(ExperimentError, match=r"\.py suffix"):
        args.run(args)


def main_assignment(script: str, name: str) -> str:
    """The source of `name = ...` inside the script's main()."""
    tree = ast.parse(script)
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    for node in ast.walk(main):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return ast.unparse(node.value)
    raise AssertionError(f"no {name} = ... in main()")


# OneCycleLR cycles momentum, which Adadelta and Adagrad lack: torch refuses those two pairs.
REFUSED_PAIRS = [(optimizer, "onecycle") for optimizer in ("adadelta", "adagrad")]
PAIRS = [
    (optimizer, scheduler)
    for optimizer in OPTIMIZERS
    for scheduler in SCHEDULERS
    if (optimizer, scheduler) not in REFUSED_PAIRS
]


@pytest.mark.parametrize(("optimizer", "scheduler"), PAIRS)
def test_the_scripts_optimizer_and_scheduler_are_the_engines(
    optimizer: str, scheduler: str
) -> None:
    experiment = preset(
        "digits-mlp",
        optimizer=optimizer,
        lr=0.03,
        momentum=0.5,
        nesterov=optimizer == "sgd",
        weight_decay=0.01,
        scheduler=SchedulerSpec(name=scheduler, milestones=(2, 4), t_max=None),
    )
    script = export_script(experiment)
    model = build_experiment_model(experiment).module
    namespace = {"torch": torch, "model": model, "LEARNING_RATE": 0.03, "EPOCHS": 10}
    theirs = eval(main_assignment(script, "optimizer"), namespace)
    ours = make_optimizer(model.parameters(), experiment.train)
    assert type(theirs) is type(ours) and theirs.defaults == ours.defaults
    namespace.update(optimizer=theirs, steps_per_epoch=7)
    their_schedule = eval(main_assignment(script, "scheduler"), namespace)
    our_schedule = make_scheduler(ours, experiment.train.scheduler, 10, 7)
    assert type(their_schedule) is type(our_schedule)
    assert their_schedule.state_dict() == our_schedule.state_dict()


@pytest.mark.parametrize(("optimizer", "scheduler"), REFUSED_PAIRS)
def test_onecycle_with_an_optimizer_without_momentum_is_refused_by_name(
    optimizer: str, scheduler: str, tmp_path: Path
) -> None:
    assert optimizer in WITHOUT_MOMENTUM
    experiment = preset("digits-mlp", optimizer=optimizer, scheduler=SchedulerSpec(name=scheduler))
    message = (
        f"train.scheduler: onecycle cycles the optimizer's momentum, which {optimizer} does not "
        "have; choose another scheduler, or one of the optimizers sgd, adam, adamw, rmsprop"
    )
    with pytest.raises(ExperimentError) as exported:
        export_script(experiment, "exp.toml")
    assert str(exported.value) == f"exp.toml: {message}"
    save_experiment(experiment, tmp_path / "exp.toml")  # written as the window saves it
    with pytest.raises(ExperimentError, match=re.escape(f"exp.toml: {message}")):
        load_experiment(tmp_path / "exp.toml")
    # Built in code (the window trains without reading a file): prepare() names it too.
    with pytest.raises(ExperimentError) as prepared:
        Trainer(experiment).prepare()
    assert str(prepared.value) == message
