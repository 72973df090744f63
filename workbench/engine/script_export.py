"""Show the code: an experiment as a standalone, readable PyTorch script that trains the same thing.

The script needs only torch (plus torchvision or scikit-learn where the dataset comes from
them). It reproduces the engine's run exactly: the same split (numpy's generator seeded
[seed, 0x5A17]), the same normalisation, the same shuffle order (a RandomSampler generator
seeded seed + epoch, or DistributedSampler with set_epoch), torch.manual_seed(seed) right
before the model is built, and the same loss, accumulation, precision and step order.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from workbench.engine.atomic import atomic_write_text
from workbench.engine.datasets import dataset_options
from workbench.engine.datasets.synthetic import TOY_X_TEST, TOY_X_TRAIN, TOY_Y_TEST, TOY_Y_TRAIN
from workbench.engine.datasets.vision import CIFAR10, FASHION_MNIST, MNIST, TorchvisionSet
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.layers import CATALOGUE
from workbench.engine.model_builder import LayerRow

_POSITIONAL = {
    "Linear": ("in_features", "out_features"),
    "Conv1d": ("in_channels", "out_channels"),
    "Conv2d": ("in_channels", "out_channels"),
    "BatchNorm1d": ("num_features",),
    "BatchNorm2d": ("num_features",),
    "LayerNorm": ("normalized_shape",),
}
_OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "adadelta": "Adadelta",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
}
_VISION_SETS: dict[str, TorchvisionSet] = {
    kind.name: kind for kind in (MNIST, FASHION_MNIST, CIFAR10)
}


def export_script(experiment: Experiment, source: str | None = None) -> str:
    """The Python source of a script that trains `experiment` without Torch Workbench.

    `source` names the experiment file in the script's docstring. Bad input (an unknown
    layer, a dataset option out of range) raises the same WorkbenchError training would.
    """
    return _Script(experiment, source).render()


def write_script(experiment: Experiment, path: str | Path, source: str | None = None) -> Path:
    """Write the exported script to `path` atomically and return the path."""
    target = Path(path)
    atomic_write_text(target, export_script(experiment, source))
    return target


def _block(text: str, indent: int = 0) -> str:
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * indent)


def _literal(value: Any) -> str:
    """A value as Python source (tuples, as the specs hold TOML lists, stay tuples)."""
    if isinstance(value, tuple):
        inner = ", ".join(_literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


class _Script:
    """Builds the script section by section; each dataset and option adds only what it needs."""

    def __init__(self, experiment: Experiment, source: str | None) -> None:
        self.experiment = experiment
        self.source = source
        self.data, self.train = experiment.data, experiment.train
        self.channels_last = self.train.memory_format == "channels_last" or (
            self.train.memory_format == "auto"
            and any(layer.type == "Conv2d" for layer in experiment.model.layers)
        )  # the same rule as the engine's uses_channels_last
        self.built = build_experiment_model(experiment)
        self.options = dataset_options(experiment.data)
        self.ddp = self.train.ddp.enabled
        self.imports: set[str] = {"import math", "import torch", "from torch import nn"}
        self.loader_imports: set[str] = {"DataLoader"}
        self.reports_accuracy = self.train.loss in (
            "cross_entropy",
            "nll",
            "bce_with_logits",
        ) or (self.built.output_shape[-1] > 1)

    # ------------------------------------------------------------------ assembly

    def render(self) -> str:
        data = self._data_section()
        model = self._model_section()
        helpers = self._helpers_section()
        training = self._training_section()
        main = self._main_section()
        settings = self._settings_section()
        parts = [
            f"{self._docstring()}\n\n{self._imports_section()}\n\n{settings}",
            data,
            model,
            helpers,
            training,
            main,
            'if __name__ == "__main__":\n    main()',
        ]
        return "\n\n\n".join(part for part in parts if part) + "\n"

    def _docstring(self) -> str:
        layers = len(self.experiment.model.layers)
        origin = f" from {Path(self.source).name}" if self.source else ""
        run = (
            f"torchrun --nproc_per_node={self.train.ddp.nproc_per_node} train.py"
            if self.ddp
            else "python train.py"
        )
        extra = "\nWithout torchrun it runs as a one-process group." if self.ddp else ""
        return (
            f'"""Train a {layers}-layer model on {self.data.name}: exported{origin} by Torch '
            "Workbench.\n\n"
            "Plain PyTorch; Torch Workbench is not needed. With the same seed it reproduces the\n"
            "workbench run: the same split, normalisation, shuffle order and initial weights.\n\n"
            f"    {run}{extra}\n"
            '"""'
        )

    def _imports_section(self) -> str:
        loader = "from torch.utils.data import " + ", ".join(sorted(self.loader_imports))
        lines = {*self.imports, loader}
        stdlib = sorted((line for line in lines if _module(line) in _STDLIB), key=_import_key)
        third_party = sorted((line for line in lines if line not in stdlib), key=_import_key)
        return "\n".join(stdlib) + "\n\n" + "\n".join(third_party)

    def _settings_section(self) -> str:
        data, train = self.data, self.train
        lines = [
            f"SEED = {train.seed}",
            f"EPOCHS = {train.epochs}",
            f"BATCH_SIZE = {data.batch_size}",
            f"VAL_BATCH_SIZE = {data.val_batch_size}",
            f"DROP_LAST = {data.drop_last}",
            f"LEARNING_RATE = {train.lr!r}",
            f'DEVICE = "{train.device}"  # auto: CUDA if there is a GPU, then MPS, then the CPU',
        ]
        if self.ddp:
            lines.insert(4, f"SHUFFLE = {data.shuffle}")
        if data.num_workers:
            lines.append(f"NUM_WORKERS = {data.num_workers}")
        onecycle = train.scheduler is not None and train.scheduler.name == "onecycle"
        if train.accumulate_grad_batches > 1 or onecycle:
            lines.append(f"ACCUMULATE_GRAD_BATCHES = {train.accumulate_grad_batches}")
        if train.gradient_clip_val is not None:
            lines.append(f"GRADIENT_CLIP_VAL = {train.gradient_clip_val!r}")
        if self.ddp:
            lines.append(
                f'DDP_BACKEND = "{train.ddp.backend}"  # auto: nccl on CUDA, gloo otherwise'
            )
            lines.append(f"DDP_TIMEOUT_SECONDS = {train.ddp.timeout_seconds}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ data

    def _data_section(self) -> str:
        name = self.data.name
        if name == "toy":
            return self._toy()
        if name in ("moons", "circles", "blobs", "xor", "spirals"):
            return self._points(name)
        if name == "digits":
            return self._digits()
        if name in ("mnist", "fashion-mnist"):
            return self._idx(_VISION_SETS[name])
        if name == "cifar10":
            return self._cifar()
        if name == "csv":
            return self._csv()
        return self._image_folder()

    def _split_helper(self) -> str:
        self.imports.add("import numpy as np")
        return _block(
            '''
            def split_indices(total, val_split, seed):
                """The seeded train/validation split Torch Workbench uses (indices in ascending order)."""
                n_val = 0
                if val_split > 0 and total >= 2:
                    n_val = min(total - 1, max(1, math.floor(total * val_split + 0.5)))
                order = np.random.default_rng([seed, 0x5A17]).permutation(total)
                return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


            def tensor_splits(x, y):
                train_idx, val_idx = split_indices(len(x), VAL_SPLIT, SEED)
                return TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[val_idx], y[val_idx])
            '''
        )

    def _toy(self) -> str:
        self.loader_imports.add("TensorDataset")
        return _block(
            f"""
            # The 5 training and 2 test points of the classic PyTorch introduction.
            X_TRAIN = {_literal(TOY_X_TRAIN)}
            Y_TRAIN = {_literal(TOY_Y_TRAIN)}
            X_TEST = {_literal(TOY_X_TEST)}
            Y_TEST = {_literal(TOY_Y_TEST)}


            def load_data():
                x_train = torch.tensor(X_TRAIN, dtype=torch.float32)
                y_train = torch.tensor(Y_TRAIN, dtype=torch.int64)
                x_test = torch.tensor(X_TEST, dtype=torch.float32)
                y_test = torch.tensor(Y_TEST, dtype=torch.int64)
                class_names = ["class 0", "class 1"]
                return TensorDataset(x_train, y_train), TensorDataset(x_test, y_test), class_names
            """
        )

    def _points(self, name: str) -> str:
        self.loader_imports.add("TensorDataset")
        o = self.options
        names: list[str]
        if name == "moons":
            self.imports.add("from sklearn.datasets import make_moons")
            make = f"x, y = make_moons(n_samples={o['n_samples']}, noise={o['noise']!r}, random_state={o['seed']})"
            names = ["upper moon", "lower moon"]
            doc = "Two interleaving half circles (scikit-learn's make_moons)."
        elif name == "circles":
            self.imports.add("from sklearn.datasets import make_circles")
            make = (
                f"x, y = make_circles(\n        n_samples={o['n_samples']}, noise={o['noise']!r}, "
                f"factor={o['factor']!r}, random_state={o['seed']}\n    )"
            )
            names = ["outer circle", "inner circle"]
            doc = "A small circle inside a large one (scikit-learn's make_circles)."
        elif name == "blobs":
            self.imports.add("from sklearn.datasets import make_blobs")
            make = (
                f"x, y = make_blobs(\n        n_samples={o['n_samples']}, centers={o['classes']}, "
                f"cluster_std={o['noise']!r}, random_state={o['seed']}\n    )"
            )
            names = [f"blob {i}" for i in range(o["classes"])]
            doc = "Gaussian blobs, one per class (scikit-learn's make_blobs)."
        elif name == "xor":
            make = _block(
                f"""
                rng = np.random.default_rng({o["seed"]})
                x = rng.uniform(-1.0, 1.0, size=({o["n_samples"]}, 2))
                y = (x[:, 0] * x[:, 1] < 0).astype(np.int64)  # class 1 where the signs differ
                x = x + rng.normal(0.0, {o["noise"]!r}, size=x.shape)
                """,
                4,
            ).lstrip()
            names = ["same sign", "opposite signs"]
            doc = "Four quadrants; the class is whether the coordinates' signs differ."
        else:
            make = _block(
                f"""
                rng = np.random.default_rng({o["seed"]})
                classes, total = {o["classes"]}, {o["n_samples"]}
                points, labels = [], []
                for arm in range(classes):
                    count = total // classes + (1 if arm < total % classes else 0)
                    radius = np.linspace(0.0, 1.0, count)
                    start = arm * 2 * math.pi / classes
                    angle = start + radius * 2.5 * math.pi + rng.normal(0.0, {o["noise"]!r}, count)
                    points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
                    labels.append(np.full(count, arm, dtype=np.int64))
                x, y = np.concatenate(points), np.concatenate(labels)
                """,
                4,
            ).lstrip()
            names = [f"arm {i}" for i in range(o["classes"])]
            doc = "Interleaved spiral arms, one per class."
        loader = f'def load_data():\n    """{doc}"""\n    {make}\n' + _block(
            f"""
                x = torch.as_tensor(x, dtype=torch.float32)
                y = torch.as_tensor(y, dtype=torch.int64)
                train_set, val_set = tensor_splits(x, y)
                return train_set, val_set, {_strings(names)}
                """,
            4,
        )
        return f"VAL_SPLIT = {self.data.val_split!r}\n\n\n{self._split_helper()}\n\n\n{loader}"

    def _digits(self) -> str:
        self.loader_imports.add("TensorDataset")
        self.imports.add("from sklearn.datasets import load_digits")
        loader = _block(
            '''
            def load_data():
                """scikit-learn's 1,797 handwritten 8x8 digits as [1, 8, 8] images scaled to [0, 1]."""
                digits = load_digits()
                x = torch.as_tensor(digits.images, dtype=torch.float32).div(16.0).unsqueeze(1)
                y = torch.as_tensor(digits.target, dtype=torch.int64)
                train_set, val_set = tensor_splits(x, y)
                return train_set, val_set, [str(name) for name in digits.target_names]
            '''
        )
        return f"VAL_SPLIT = {self.data.val_split!r}\n\n\n{self._split_helper()}\n\n\n{loader}"

    def _idx(self, kind: TorchvisionSet) -> str:
        class_names = (
            "[str(digit) for digit in range(10)]"
            if kind is MNIST
            else f"list(datasets.{kind.factory.__name__}.classes)"
        )
        self.loader_imports.add("TensorDataset")
        self.imports.add("from pathlib import Path")
        self.imports.add("from torchvision import datasets")
        o = self.options
        normalize = _block(
            f"""
                mean = torch.tensor({kind.mean!r}, dtype=torch.float32).view(1, -1, 1, 1)
                std = torch.tensor({kind.std!r}, dtype=torch.float32).view(1, -1, 1, 1)
                images = images.sub(mean).div(std)
            """,
            4,
        )
        body = (
            normalize
            if o["normalize"]
            else "    # (no normalisation: data.options.normalize = false)"
        )
        return "\n".join(
            [
                f'ROOT = Path("{self.data.root}").expanduser()',
                f"DOWNLOAD = {self.data.download}",
                f"TRAIN_SAMPLES = {o['train_samples']!r}  # None: all",
                f"VAL_SAMPLES = {o['val_samples']!r}",
                "",
                "",
                _block(
                    f'''
                    def idx_tensors(train, limit):
                        """{kind.name} as whole tensors: the numbers ToTensor() + Normalize() give."""
                        dataset = datasets.{kind.factory.__name__}(str(ROOT), train=train, download=DOWNLOAD)
                        images = dataset.data[:limit].unsqueeze(1).to(torch.float32).div(255)
                    '''
                ),
                body,
                "    return TensorDataset(images, dataset.targets[:limit].to(torch.int64))",
                "",
                "",
                _block(
                    f"""
                    def load_data():
                        class_names = {class_names}
                        return idx_tensors(True, TRAIN_SAMPLES), idx_tensors(False, VAL_SAMPLES), class_names
                    """
                ),
            ]
        )

    def _cifar(self) -> str:
        self.loader_imports.add("Subset")
        self.imports.update(
            {"from pathlib import Path", "from torchvision import datasets, transforms"}
        )
        o = self.options
        steps = "transforms.ToTensor()"
        if o["normalize"]:
            steps += f", transforms.Normalize({CIFAR10.mean!r}, {CIFAR10.std!r})"
        return _block(
            f'''
            ROOT = Path("{self.data.root}").expanduser()
            DOWNLOAD = {self.data.download}
            TRAIN_SAMPLES = {o["train_samples"]!r}  # None: all
            VAL_SAMPLES = {o["val_samples"]!r}


            def first(dataset, limit):
                return dataset if limit is None or limit >= len(dataset) else Subset(dataset, range(limit))


            def load_data():
                """CIFAR-10 through torchvision, transformed image by image."""
                transform = transforms.Compose([{steps}])
                train_set = datasets.CIFAR10(str(ROOT), train=True, download=DOWNLOAD, transform=transform)
                val_set = datasets.CIFAR10(str(ROOT), train=False, download=DOWNLOAD, transform=transform)
                class_names = [str(name) for name in train_set.classes]
                return first(train_set, TRAIN_SAMPLES), first(val_set, VAL_SAMPLES), class_names
            '''
        )

    def _csv(self) -> str:
        self.loader_imports.add("TensorDataset")
        self.imports.add("import csv")
        o = self.options
        standardize = ""
        if o["standardize"]:
            standardize = _block(
                """
                # Standardise with the training rows' statistics (std 1 where a column is constant).
                train_x = train_set.tensors[0]
                mean, std = train_x.mean(dim=0), train_x.std(dim=0, unbiased=False)
                std = torch.where(std > 0, std, torch.ones_like(std))
                train_set = TensorDataset((train_x - mean) / std, train_set.tensors[1])
                val_set = TensorDataset((val_set.tensors[0] - mean) / std, val_set.tensors[1])
                """,
                4,
            )
        loader = _block(
            f'''
            CSV_PATH = {self.data.path!r}
            LABEL_COLUMN = {self.data.label_column!r}
            DELIMITER = {o["delimiter"]!r}


            def read_table():
                """Numeric feature columns and a label column; labels sorted (numerically if whole numbers)."""
                with open(CSV_PATH, encoding="utf-8-sig", newline="") as handle:
                    rows = [row for row in csv.reader(handle, delimiter=DELIMITER) if any(c.strip() for c in row)]
                header = [cell.strip() for cell in rows[0]]
                label_index = header.index(LABEL_COLUMN)
                features = [[float(c) for i, c in enumerate(row) if i != label_index] for row in rows[1:]]
                labels = [row[label_index].strip() for row in rows[1:]]
                try:
                    class_names = sorted(set(labels), key=lambda label: (int(label), label))
                except ValueError:
                    class_names = sorted(set(labels))
                lookup = {{name: index for index, name in enumerate(class_names)}}
                x = torch.tensor(features, dtype=torch.float32)
                y = torch.tensor([lookup[label] for label in labels], dtype=torch.int64)
                return x, y, class_names
            '''
        )
        load = "def load_data():\n    x, y, class_names = read_table()\n    train_set, val_set = tensor_splits(x, y)\n"
        if standardize:
            load += standardize + "\n"
        load += "    return train_set, val_set, class_names"
        return "\n\n\n".join(
            [f"VAL_SPLIT = {self.data.val_split!r}", self._split_helper(), loader, load]
        )

    def _image_folder(self) -> str:
        self.loader_imports.add("Subset")
        self.imports.update(
            {"from pathlib import Path", "from torchvision import datasets, transforms"}
        )
        self.imports.add("import numpy as np")
        o = self.options
        gray = "transforms.Grayscale(num_output_channels=1), " if o["grayscale"] else ""
        return _block(
            f'''
            VAL_SPLIT = {self.data.val_split!r}
            FOLDER = Path({self.data.path!r}).expanduser()
            IMAGE_SIZE = {o["image_size"]}


            def split_indices(total, val_split, seed):
                """The seeded train/validation split Torch Workbench uses (indices in ascending order)."""
                n_val = 0
                if val_split > 0 and total >= 2:
                    n_val = min(total - 1, max(1, math.floor(total * val_split + 0.5)))
                order = np.random.default_rng([seed, 0x5A17]).permutation(total)
                return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


            def load_data():
                """One subfolder per class; train/ + val/ (or test/) subfolders when present."""
                transform = transforms.Compose(
                    [transforms.Resize((IMAGE_SIZE, IMAGE_SIZE)), {gray}transforms.ToTensor()]
                )
                split_folder = next((FOLDER / n for n in ("val", "test") if (FOLDER / n).is_dir()), None)
                if (FOLDER / "train").is_dir() and split_folder is not None:
                    train_set = datasets.ImageFolder(str(FOLDER / "train"), transform=transform)
                    val_set = datasets.ImageFolder(str(split_folder), transform=transform)
                    return train_set, val_set, list(train_set.classes)
                whole = datasets.ImageFolder(str(FOLDER), transform=transform)
                train_idx, val_idx = split_indices(len(whole), VAL_SPLIT, SEED)
                return Subset(whole, train_idx), Subset(whole, val_idx), list(whole.classes)
            '''
        )

    # ------------------------------------------------------------------ model

    def _model_section(self) -> str:
        lines = [_layer_source(row) for row in self.built.rows]
        body = "\n".join(f"        {line}," for line in lines)
        shape = list(self.built.input_shape)
        return (
            "def build_model():\n"
            f'    """{len(lines)} layers; one sample goes in as {shape}, out as '
            f'{list(self.built.output_shape)}."""\n'
            f"    return nn.Sequential(\n{body}\n    )"
        )

    # ------------------------------------------------------------------ helpers

    def _helpers_section(self) -> str:
        parts = []
        if self.ddp:
            self.imports.update({"import os", "import datetime"})
            if self.train.accumulate_grad_batches > 1:
                self.imports.add("import contextlib")
            self.imports.add("import torch.distributed as dist")
            self.imports.add("from torch.nn.parallel import DistributedDataParallel")
            self.imports.add("from torch.utils.data.distributed import DistributedSampler")
            self.loader_imports.add("Subset")
            parts.append(self._ddp_setup())
        else:
            parts.append(self._pick_device())
        parts.append(
            _block(
                """
            def percent(value):
                return "n/a" if value is None else f"{value:.2%}"


            def number(value):
                return "n/a" if value is None else f"{value:.4f}"
            """
            )
        )
        parts.append(self._loss_helpers())
        parts.append(self._count_correct())
        parts.append(self._loader_generator())
        parts.append(self._train_loader())
        return "\n\n\n".join(part for part in parts if part)

    def _pick_device(self) -> str:
        return _block(
            """
            def pick_device():
                if DEVICE != "auto":
                    return torch.device(DEVICE)
                if torch.cuda.is_available():
                    return torch.device("cuda")
                if torch.backends.mps.is_available():
                    return torch.device("mps")
                return torch.device("cpu")
            """
        )

    def _ddp_setup(self) -> str:
        if self.train.device in ("auto",) or self.train.device.startswith("cuda"):
            cuda = "torch.cuda.is_available()"
        else:
            cuda = "False"
        return _block(
            f'''
            def setup_distributed():
                """Join the process group torchrun set up (or a one-process group without torchrun)."""
                for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                                   ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
                    os.environ.setdefault(key, value)
                rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
                local_rank = int(os.environ["LOCAL_RANK"])
                use_cuda = {cuda}
                if use_cuda:
                    device = torch.device("cuda", local_rank)
                    torch.cuda.set_device(device)
                else:
                    device = torch.device("cpu")
                backend = DDP_BACKEND if DDP_BACKEND != "auto" else ("nccl" if use_cuda else "gloo")
                timeout = datetime.timedelta(seconds=DDP_TIMEOUT_SECONDS)
                dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)
                return rank, world_size, device
            '''
        )

    def _loss_helpers(self) -> str:
        loss = self.train.loss
        if loss in ("cross_entropy", "nll"):
            return ""
        function = "mse_loss" if loss == "mse" else "binary_cross_entropy_with_logits"
        return _block(
            f'''
            def float_targets(output, target):
                """Class labels as the float targets this loss needs: one-hot for several outputs."""
                if output.dim() == 2 and output.shape[1] > 1:
                    return nn.functional.one_hot(target, output.shape[1]).to(output.dtype)
                return target.to(output.dtype).view_as(output)


            def loss_fn(output, target):
                return nn.functional.{function}(output, float_targets(output, target))
            '''
        )

    def _count_correct(self) -> str:
        if not self.reports_accuracy:
            return _block(
                """
                def count_correct(output, target):
                    return 0  # a regression loss with one output: no accuracy
                """
            )
        if self.built.output_shape[-1] > 1:
            rule = "(output.argmax(dim=1) == target.view(-1)).sum()"
        else:
            rule = "((output.view(-1) > 0).long() == target.view(-1).long()).sum()"
        return f"def count_correct(output, target):\n    return int({rule})"

    def _loader_generator(self) -> str:
        return _block(
            """
            def loader_generator():
                \"\"\"The DataLoader's own generator (it seeds worker processes). Without it, every new
                loader iterator draws from torch's global random numbers, which Dropout uses.\"\"\"
                return torch.Generator().manual_seed(SEED)
            """
        )

    def _train_loader(self) -> str:
        workers = ", num_workers=NUM_WORKERS" if self.data.num_workers else ""
        workers += ", generator=loader_generator()"
        if self.ddp:
            return _block(
                f'''
                def make_train_loader(train_set, epoch, rank, world_size):
                    """This rank's shard of the epoch; set_epoch reshuffles it (seeded SEED + epoch)."""
                    sampler = DistributedSampler(
                        train_set, num_replicas=world_size, rank=rank, shuffle=SHUFFLE, seed=SEED,
                        drop_last=DROP_LAST,
                    )
                    sampler.set_epoch(epoch)
                    return DataLoader(
                        train_set, batch_size=BATCH_SIZE, sampler=sampler, drop_last=DROP_LAST,
                        {workers.lstrip(", ")}
                    )
                '''
            )
        if not self.data.shuffle:
            return _block(
                f"""
                def make_train_loader(train_set, epoch):
                    return DataLoader(
                        train_set, batch_size=BATCH_SIZE, drop_last=DROP_LAST{workers}
                    )
                """
            )
        self.loader_imports.add("RandomSampler")
        return _block(
            f'''
            def make_train_loader(train_set, epoch):
                """The epoch's batches, shuffled by a generator seeded SEED + epoch: the same order on
                every run, and the one Torch Workbench uses."""
                sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(SEED + epoch))
                return DataLoader(
                    train_set, batch_size=BATCH_SIZE, sampler=sampler, drop_last=DROP_LAST,
                    {workers.lstrip(", ")}
                )
            '''
        )

    # ------------------------------------------------------------------ training

    def _autocast(self) -> str | None:
        precision = self.train.precision
        if precision == "32-true":
            return None
        dtype = "torch.float16" if precision == "16-mixed" else "torch.bfloat16"
        return f"torch.autocast(device_type=device.type, dtype={dtype})"

    def _training_section(self) -> str:
        return "\n\n\n".join([self._train_one_epoch(), self._evaluate()])

    def _train_one_epoch(self) -> str:
        k = self.train.accumulate_grad_batches
        scaled = self.train.precision == "16-mixed"
        autocast = self._autocast()
        forward = "output = model(x)\nloss = loss_fn(output, y)"
        if autocast:
            forward = f"with {autocast}:\n" + textwrap.indent(forward, "    ")
        backward_loss = "loss / ACCUMULATE_GRAD_BATCHES" if k > 1 else "loss"
        if scaled:
            backward = f"scaler.scale({backward_loss}).backward()"
        else:
            backward = f"({backward_loss}).backward()" if k > 1 else "loss.backward()"
        step_lines = []
        if self.train.gradient_clip_val is not None:
            if scaled:
                step_lines.append("scaler.unscale_(optimizer)")
            step_lines.append("nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP_VAL)")
        step_lines += (
            ["scaler.step(optimizer)", "scaler.update()"] if scaled else ["optimizer.step()"]
        )
        step_lines.append("optimizer.zero_grad(set_to_none=True)")
        if self.train.scheduler is not None and self.train.scheduler.name == "onecycle":
            step_lines.append("if scheduler.last_epoch < scheduler.total_steps:")
            step_lines.append("    scheduler.step()  # OneCycle follows optimizer steps")
        step = "\n".join(step_lines)
        if k > 1:
            boundary = (
                "boundary = (index + 1) % ACCUMULATE_GRAD_BATCHES == 0 or index + 1 == batches"
            )
            step = "if boundary:\n" + textwrap.indent(step, "    ")
        else:
            boundary = ""
        pass_lines = f"{forward}\n{backward}"
        if self.ddp and k > 1:
            pass_lines = (
                "# Accumulating micro-batches skip the gradient all-reduce; the last one syncs.\n"
                "sync = contextlib.nullcontext() if boundary else model.no_sync()\n"
                "with sync:\n" + textwrap.indent(pass_lines, "    ")
            )
        args = "model, loader, optimizer, loss_fn, device, epoch"
        if scaled:
            args += ", scaler"
        if self.train.scheduler is not None and self.train.scheduler.name == "onecycle":
            args += ", scheduler"
        inner = "\n".join(
            line
            for line in [
                "x, y = x.to(device), y.to(device)",
                *(
                    ["x = x.contiguous(memory_format=torch.channels_last)"]
                    if self.channels_last
                    else []
                ),
                boundary,
                pass_lines,
                "loss_value = loss.item()",
                "if not math.isfinite(loss_value):",
                "    raise SystemExit(",
                '        f"the loss became {loss_value} at epoch {epoch}, batch {index}; "',
                '        "lower the learning rate or set a gradient clip"',
                "    )",
                "correct += count_correct(output.detach(), y)",
                "loss_sum += loss_value * len(y)",
                "samples += len(y)",
                step,
                "if index % 50 == 0:",
                "    print(",
                '        f"Epoch: {epoch:03d}/{EPOCHS:03d} | Batch {index:03d}/{batches:03d} "',
                '        f"| Train Loss: {loss_value:.4f}"',
                "    )",
            ]
            if line
        )
        return (
            f"def train_one_epoch({args}):\n"
            '    """One pass over the training data; returns the summed loss, correct and samples."""\n'
            "    model.train()\n"
            "    loss_sum, correct, samples = 0.0, 0, 0\n"
            "    batches = len(loader)\n"
            "    for index, (x, y) in enumerate(loader):\n"
            f"{textwrap.indent(inner, ' ' * 8)}\n"
            "    return loss_sum, correct, samples"
        )

    def _evaluate(self) -> str:
        channels_last_line = (
            "\n" + " " * 24 + "x = x.contiguous(memory_format=torch.channels_last)"
            if self.channels_last
            else ""
        )
        autocast = self._autocast()
        context = "torch.inference_mode()" + (f", {autocast}" if autocast else "")
        return _block(
            f'''
            def evaluate(model, loader, loss_fn, device):
                """Summed loss, correct predictions and samples of the model on `loader`."""
                model.eval()
                loss_sum, correct, samples = 0.0, 0, 0
                with {context}:
                    for x, y in loader:
                        x, y = x.to(device), y.to(device){channels_last_line}
                        output = model(x)
                        loss_sum += loss_fn(output, y).item() * len(y)
                        correct += count_correct(output, y)
                        samples += len(y)
                return loss_sum, correct, samples
            '''
        )

    # ------------------------------------------------------------------ main

    def _optimizer(self) -> str:
        train = self.train
        args = ["model.parameters()", "lr=LEARNING_RATE"]
        if train.optimizer in ("sgd", "rmsprop") and train.momentum:
            args.append(f"momentum={train.momentum!r}")
        if train.optimizer == "sgd" and train.nesterov:
            args.append("nesterov=True")
        # AdamW's own default weight decay is 0.01: the experiment's value is always written.
        if train.weight_decay or train.optimizer == "adamw":
            args.append(f"weight_decay={train.weight_decay!r}")
        return f"torch.optim.{_OPTIMIZERS[train.optimizer]}({', '.join(args)})"

    def _loss(self) -> str | None:
        return {"cross_entropy": "nn.CrossEntropyLoss()", "nll": "nn.NLLLoss()"}.get(
            self.train.loss
        )

    def _scheduler(self) -> str | None:
        spec = self.train.scheduler
        if spec is None:
            return None
        s = "torch.optim.lr_scheduler"
        if spec.name == "step":
            return f"{s}.StepLR(optimizer, step_size={spec.step_size}, gamma={spec.gamma!r})"
        if spec.name == "multistep":
            return f"{s}.MultiStepLR(optimizer, milestones={list(spec.milestones)}, gamma={spec.gamma!r})"
        if spec.name == "exponential":
            return f"{s}.ExponentialLR(optimizer, gamma={spec.gamma!r})"
        if spec.name == "cosine":
            t_max = spec.t_max or "EPOCHS"
            return f"{s}.CosineAnnealingLR(optimizer, T_max={t_max}, eta_min={spec.eta_min!r})"
        if spec.name == "onecycle":
            max_lr = repr(spec.max_lr) if spec.max_lr else "LEARNING_RATE"
            return (
                f"{s}.OneCycleLR(\n        optimizer, max_lr={max_lr}, epochs=EPOCHS, "
                "steps_per_epoch=max(1, steps_per_epoch)\n    )"
            )
        return f"{s}.ReduceLROnPlateau(optimizer, factor={spec.factor!r}, patience={spec.patience})"

    def _main_section(self) -> str:
        train = self.train
        ddp = self.ddp
        scaled = train.precision == "16-mixed"
        onecycle = train.scheduler is not None and train.scheduler.name == "onecycle"
        lines: list[str] = []
        add = lines.append
        if ddp:
            add("rank, world_size, device = setup_distributed()")
            add("main_process = rank == 0")
            loader_args = "train_set, epoch, rank, world_size"
        else:
            add("device = pick_device()")
            loader_args = "train_set, epoch"
        add("torch.manual_seed(SEED)")
        add("train_set, val_set, class_names = load_data()")
        say = "if main_process:\n    print" if ddp else "print"
        add('sizes = f"{len(train_set)} training and {len(val_set)} validation samples"')
        add(f'{say}(f"{{sizes}}; classes: {{class_names}}")')
        add("")
        add("torch.manual_seed(SEED)  # the initial weights depend on the seed alone")
        if self.channels_last:
            add(
                "# channels_last memory: faster 2-D convolutions (inputs are converted in the loop)"
            )
            add("model = build_model().to(device, memory_format=torch.channels_last)")
        else:
            add("model = build_model().to(device)")
        add(f"{say}(model)")
        add("trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)")
        add(f'{say}(f"Total number of trainable model parameters: {{trainable}}")')
        if ddp:
            add('if device.type == "cuda":')
            add("    model = DistributedDataParallel(model, device_ids=[device.index])")
            add("else:")
            add("    model = DistributedDataParallel(model)")
        add("")
        add(f"optimizer = {self._optimizer()}")
        if self._loss():
            add(f"loss_fn = {self._loss()}")
        if scaled:
            add(
                "scaler = torch.amp.GradScaler(device.type)  # scales the float16 loss, skips inf steps"
            )
        if onecycle:
            add(
                f"steps_per_epoch = math.ceil(len(make_train_loader({loader_args.replace('epoch', '1')})) / ACCUMULATE_GRAD_BATCHES)"
            )
        if train.scheduler is not None:
            add(f"scheduler = {self._scheduler()}")
        if ddp:
            add("# Validation is sharded without padding, so the summed counts are exact.")
            add("val_shard = Subset(val_set, range(rank, len(val_set), world_size))")
            add(
                "val_loader = DataLoader(\n"
                "    val_shard, batch_size=VAL_BATCH_SIZE, generator=loader_generator()\n)"
            )
        else:
            add(
                "val_loader = DataLoader(val_set, batch_size=VAL_BATCH_SIZE, "
                "generator=loader_generator())"
            )
        early = train.early_stopping
        if early is not None:
            minimize = early.mode == "min" or (
                early.mode == "auto" and "accuracy" not in early.monitor
            )
            add("")
            add(
                f"# Early stopping on {early.monitor}: stop after {early.patience} epochs without improvement."
            )
            add(
                f"best_value, best_epoch, best_state, bad_epochs = {'math.inf' if minimize else '-math.inf'}, None, None, 0"
            )
        add("val_loss = val_accuracy = None")
        add("")
        add("for epoch in range(1, EPOCHS + 1):")
        call = "train_one_epoch(model, train_loader, optimizer, loss_fn, device, epoch"
        if scaled:
            call += ", scaler"
        if onecycle:
            call += ", scheduler"
        call += ")"
        body: list[str] = []
        b = body.append
        b(f"train_loader = make_train_loader({loader_args})")
        b(f"train_sums = {call}")
        b("val_sums = evaluate(model, val_loader, loss_fn, device)")
        if ddp:
            b("totals = torch.tensor([*train_sums, *val_sums], dtype=torch.float64, device=device)")
            b("dist.all_reduce(totals)  # sum over every rank")
            b("train_loss_sum, train_correct, train_samples, *val_sums = totals.tolist()")
        else:
            b("train_loss_sum, train_correct, train_samples = train_sums")
        b("val_loss_sum, val_correct, val_samples = val_sums")
        b("train_loss = train_loss_sum / train_samples")
        b("train_accuracy = train_correct / train_samples")
        b("if val_samples:")
        b("    val_loss, val_accuracy = val_loss_sum / val_samples, val_correct / val_samples")
        b('lr = optimizer.param_groups[0]["lr"]')
        accuracy = self.reports_accuracy
        train_acc = "{percent(train_accuracy)}" if accuracy else "n/a"
        val_acc = "{percent(val_accuracy)}" if accuracy else "n/a"
        message = [
            f'f"Epoch: {{epoch:03d}}/{{EPOCHS:03d}} | Train Acc: {train_acc} "',
            f'f"| Val Acc: {val_acc} | Train Loss: {{train_loss:.4f}} "',
            'f"| Val Loss: {number(val_loss)} | LR: {lr:.3g}"',
        ]
        epoch_print = "print(\n" + "\n".join(f"    {part}" for part in message) + "\n)"
        b(f"if main_process:\n{textwrap.indent(epoch_print, '    ')}" if ddp else epoch_print)
        if train.scheduler is not None and not onecycle:
            if train.scheduler.name == "reduce_on_plateau":
                b("scheduler.step(val_loss if val_samples else train_loss)")
            else:
                b("scheduler.step()")
        if early is not None:
            minimize = early.mode == "min" or (
                early.mode == "auto" and "accuracy" not in early.monitor
            )
            compare = (
                f"value < best_value - {early.min_delta!r}"
                if minimize
                else f"value > best_value + {early.min_delta!r}"
            )
            b(f"value = {early.monitor}")
            b(f"if {compare}:")
            b("    best_value, best_epoch, bad_epochs = value, epoch, 0")
            if early.restore_best_weights:
                unwrap = "model.module" if ddp else "model"
                b(
                    f'    best_state = {{k: v.detach().to("cpu", copy=True) for k, v in {unwrap}.state_dict().items()}}'
                )
            b("else:")
            b("    bad_epochs += 1")
            b(f"    if bad_epochs >= {early.patience}:")
            stop = (
                f'print(f"Early stopping at epoch {{epoch}}: {early.monitor} has not improved '
                f'for {early.patience} epochs")'
            )
            if ddp:
                b("        if main_process:")
                b(f"            {stop}")
            else:
                b(f"        {stop}")
            b("        break")
        lines.append(textwrap.indent("\n".join(body), "    "))
        if early is not None and early.restore_best_weights:
            unwrap = "model.module" if ddp else "model"
            add("if best_state is not None:")
            add(f"    {unwrap}.load_state_dict(best_state)")
            add(
                f'    {say}(f"Restored the best weights (epoch {{best_epoch}})")'.replace(
                    "\n", "\n    "
                )
            )
        add("")
        final = "model.module" if ddp else "model"
        if ddp:
            add("if main_process:")
            add(f'    torch.save({final}.state_dict(), "model.pth")')
            add('    print("Saved the weights to model.pth")')
            if accuracy:
                add("    if val_accuracy is not None:")
                add('        print(f"Final validation accuracy: {val_accuracy:.2%}")')
            add("dist.destroy_process_group()")
        else:
            add(f'torch.save({final}.state_dict(), "model.pth")')
            add('print("Saved the weights to model.pth")')
            if accuracy:
                add("if val_accuracy is not None:")
                add('    print(f"Final validation accuracy: {val_accuracy:.2%}")')
        body_text = textwrap.indent("\n".join(lines), "    ")
        body_text = "\n".join(line.rstrip() for line in body_text.splitlines())
        return f"def main():\n{body_text}"


_STDLIB = ("contextlib", "csv", "datetime", "math", "os", "pathlib")


def _module(line: str) -> str:
    return line.split()[1].split(".")[0]


def _import_key(line: str) -> tuple[bool, str]:
    """isort's order: plain `import x` lines first, then `from x import y`, each by module."""
    return line.startswith("from "), line.split()[1]


def _torch_defaults(module_class: type[nn.Module]) -> Mapping[str, Any]:
    parameters = inspect.signature(module_class).parameters
    return {
        name: p.default
        for name, p in parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _layer_source(row: LayerRow) -> str:
    """`nn.Linear(64, 32)`: sizes positional as torch code writes them, then every argument
    that differs from torch's own default (Softmax's dim always)."""
    kind = CATALOGUE[row.type]
    defaults = _torch_defaults(kind.module_class)
    positional = _POSITIONAL.get(row.type, ())
    args = [_literal(row.resolved[name]) for name in positional]
    for name, value in row.resolved.items():
        if name in positional:
            continue
        if kind.shape_rule == "pool" and name == "stride" and value == row.resolved["kernel_size"]:
            continue
        if name in defaults and defaults[name] == value and defaults[name] is not None:
            continue
        if name in defaults and defaults[name] is None and value is None:
            continue
        args.append(f"{name}={_literal(value)}")
    return f"nn.{row.type}({', '.join(args)})"


def _strings(names: list[str]) -> str:
    """A list of strings in double quotes, as a formatter would leave it."""
    return "[" + ", ".join(json.dumps(name) for name in names) + "]"
