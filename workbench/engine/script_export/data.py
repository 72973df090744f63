"""The data part of an exported script: `load_data()` for each dataset, split and normalised
exactly as the engine does it (the numbers, class names and folders come from the engine)."""

from __future__ import annotations

import textwrap

from workbench.engine.datasets import describe_dataset
from workbench.engine.datasets.image_transforms import Step, image_pipeline
from workbench.engine.datasets.synthetic import (
    POINT_SETS,
    TOY_X_TEST,
    TOY_X_TRAIN,
    TOY_Y_TEST,
    TOY_Y_TRAIN,
)
from workbench.engine.datasets.text import text_file
from workbench.engine.datasets.vision import (
    CIFAR10,
    FASHION_MNIST,
    MAX_IMAGE_PIXELS,
    MNIST,
    SPLIT_FOLDERS,
    TorchvisionSet,
)
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment_model import experiment_preprocessing
from workbench.engine.script_export.rules import ScriptPlan
from workbench.engine.script_export.text import Section, block, call, join_sections, literal

_IDX_SETS = {kind.name: kind for kind in (MNIST, FASHION_MNIST)}
_TENSOR_DATASET = "from torch.utils.data import TensorDataset"
_SUBSET = "from torch.utils.data import Subset"
_PATH = "from pathlib import Path"
_VISION = frozenset({_SUBSET, _PATH, "from torchvision import datasets, transforms"})

SPLIT_INDICES = '''
def split_indices(total, val_split, seed):
    """The seeded train/validation split Torch Workbench uses (indices in ascending order)."""
    n_val = 0
    if val_split > 0 and total >= 2:
        n_val = min(total - 1, max(1, math.floor(total * val_split + 0.5)))
    order = np.random.default_rng([seed, 0x5A17]).permutation(total)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
'''

TENSOR_SPLITS = """
def tensor_splits(x, y):
    train_idx, val_idx = split_indices(len(x), VAL_SPLIT, SEED)
    return TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[val_idx], y[val_idx])
"""


def data_section(plan: ScriptPlan) -> Section:
    """The dataset's constants and `load_data()`, which returns (train_set, val_set, class_names)."""
    name = plan.experiment.data.name
    if name == "toy":
        return _toy(plan)
    if name in POINT_SETS:
        return _points(plan)
    if name == "digits":
        return _digits(plan)
    if name in _IDX_SETS:
        return _idx(plan, _IDX_SETS[name])
    if name == "cifar10":
        return _cifar(plan)
    if name == "csv":
        return _csv(plan)
    if name == "text":
        return _text(plan)
    return _image_folder(plan)


def _class_names(plan: ScriptPlan) -> str:
    """The engine's class names as a list literal (bundled sets: no files are read)."""
    return literal(list(describe_dataset(plan.experiment.data).class_names))


def _split_parts(plan: ScriptPlan) -> list[str]:
    return [f"VAL_SPLIT = {literal(plan.experiment.data.val_split)}", block(SPLIT_INDICES)]


def _tensor_split_section(plan: ScriptPlan, loader: str, *imports: str) -> Section:
    text = join_sections([*_split_parts(plan), block(TENSOR_SPLITS), loader])
    return Section(text, frozenset({"import numpy as np", _TENSOR_DATASET, *imports}))


def _toy(plan: ScriptPlan) -> Section:
    text = block(
        f"""
        # The 5 training and 2 test points of the classic PyTorch introduction.
        X_TRAIN = {literal(TOY_X_TRAIN)}
        Y_TRAIN = {literal(TOY_Y_TRAIN)}
        X_TEST = {literal(TOY_X_TEST)}
        Y_TEST = {literal(TOY_Y_TEST)}


        def load_data():
            x_train = torch.tensor(X_TRAIN, dtype=torch.float32)
            y_train = torch.tensor(Y_TRAIN, dtype=torch.int64)
            x_test = torch.tensor(X_TEST, dtype=torch.float32)
            y_test = torch.tensor(Y_TEST, dtype=torch.int64)
            class_names = {_class_names(plan)}
            return TensorDataset(x_train, y_train), TensorDataset(x_test, y_test), class_names
        """
    )
    return Section(text, frozenset({_TENSOR_DATASET}))


def _points(plan: ScriptPlan) -> Section:
    name = plan.experiment.data.name
    o = {key: literal(value) for key, value in plan.options.items()}
    imports: set[str] = set()
    if name == "moons":
        imports.add("from sklearn.datasets import make_moons")
        make = (
            f"x, y = make_moons(n_samples={o['n_samples']}, noise={o['noise']}, "
            f"random_state={o['seed']})"
        )
        doc = "Two interleaving half circles (scikit-learn's make_moons)."
    elif name == "circles":
        imports.add("from sklearn.datasets import make_circles")
        make = (
            f"x, y = make_circles(\n        n_samples={o['n_samples']}, noise={o['noise']}, "
            f"factor={o['factor']}, random_state={o['seed']}\n    )"
        )
        doc = "A small circle inside a large one (scikit-learn's make_circles)."
    elif name == "blobs":
        imports.add("from sklearn.datasets import make_blobs")
        make = (
            f"x, y = make_blobs(\n        n_samples={o['n_samples']}, n_features={o['features']}, "
            f"centers={o['classes']}, cluster_std={o['noise']}, random_state={o['seed']}\n    )"
        )
        doc = "Gaussian blobs, one per class (scikit-learn's make_blobs)."
    elif name == "xor":
        make = block(
            f"""
            rng = np.random.default_rng({o["seed"]})
            x = rng.uniform(-1.0, 1.0, size=({o["n_samples"]}, 2))
            y = (x[:, 0] * x[:, 1] < 0).astype(np.int64)  # class 1 where the signs differ
            x = x + rng.normal(0.0, {o["noise"]}, size=x.shape)
            """,
            4,
        ).lstrip()
        doc = "Four quadrants; the class is whether the coordinates' signs differ."
    else:
        make = block(
            f"""
            rng = np.random.default_rng({o["seed"]})
            classes, total = {o["classes"]}, {o["n_samples"]}
            points, labels = [], []
            for arm in range(classes):
                count = total // classes + (1 if arm < total % classes else 0)
                radius = np.linspace(0.0, 1.0, count)
                start = arm * 2 * math.pi / classes
                angle = start + radius * 2.5 * math.pi + rng.normal(0.0, {o["noise"]}, count)
                points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
                labels.append(np.full(count, arm, dtype=np.int64))
            x, y = np.concatenate(points), np.concatenate(labels)
            """,
            4,
        ).lstrip()
        doc = "Interleaved spiral arms, one per class."
    loader = f'def load_data():\n    """{doc}"""\n    {make}\n' + block(
        f"""
        x = torch.as_tensor(x, dtype=torch.float32)
        y = torch.as_tensor(y, dtype=torch.int64)
        train_set, val_set = tensor_splits(x, y)
        return train_set, val_set, {_class_names(plan)}
        """,
        4,
    )
    return _tensor_split_section(plan, loader, *imports)


def _digits(plan: ScriptPlan) -> Section:
    loader = block(
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
    return _tensor_split_section(plan, loader, "from sklearn.datasets import load_digits")


def _files_constants(plan: ScriptPlan) -> str:
    data, options = plan.experiment.data, plan.options
    return "\n".join(
        [
            f"ROOT = Path({literal(data.root)}).expanduser()",
            f"DOWNLOAD = {literal(data.download)}",
            f"TRAIN_SAMPLES = {literal(options['train_samples'])}  # None: all",
            f"VAL_SAMPLES = {literal(options['val_samples'])}",
        ]
    )


def _idx(plan: ScriptPlan, kind: TorchvisionSet) -> Section:
    factory = kind.factory.__name__  # torchvision's class, e.g. FashionMNIST
    class_names = (
        "[str(digit) for digit in range(10)]"
        if kind is MNIST
        else f"list(datasets.{factory}.classes)"
    )
    if plan.options["normalize"]:
        normalize = block(
            f"""
            mean = torch.tensor({literal(kind.mean)}, dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.tensor({literal(kind.std)}, dtype=torch.float32).view(1, -1, 1, 1)
            images = images.sub(mean).div(std)
            """,
            4,
        )
    else:
        normalize = "    # (no normalisation: data.options.normalize = false)"
    tensors = block(
        f'''
        def idx_tensors(train, limit):
            """{kind.name} as whole tensors: the numbers ToTensor() + Normalize() give."""
            dataset = datasets.{factory}(str(ROOT), train=train, download=DOWNLOAD)
            images = dataset.data[:limit].unsqueeze(1).to(torch.float32).div(255)
        '''
    )
    tensors += f"\n{normalize}\n"
    tensors += "    return TensorDataset(images, dataset.targets[:limit].to(torch.int64))"
    loader = block(
        f"""
        def load_data():
            class_names = {class_names}
            return idx_tensors(True, TRAIN_SAMPLES), idx_tensors(False, VAL_SAMPLES), class_names
        """
    )
    text = join_sections([_files_constants(plan), tensors, loader])
    return Section(text, frozenset({_TENSOR_DATASET, _PATH, "from torchvision import datasets"}))


def _cifar(plan: ScriptPlan) -> Section:
    compose = "transforms.Compose([transforms.ToTensor()])"
    if plan.options["normalize"]:
        # A step a line, as a formatter wraps the list, indented as the template below is.
        normalize = f"transforms.Normalize({literal(CIFAR10.mean)}, {literal(CIFAR10.std)})"
        steps = "".join(f"{' ' * 20}{step},\n" for step in ("transforms.ToTensor()", normalize))
        compose = f"transforms.Compose(\n{' ' * 16}[\n{steps}{' ' * 16}]\n{' ' * 12})"
    functions = block(
        f'''
        def first(dataset, limit):
            return dataset if limit is None or limit >= len(dataset) else Subset(dataset, range(limit))


        def load_data():
            """CIFAR-10 through torchvision, transformed image by image."""
            transform = {compose}
            train_set = datasets.CIFAR10(str(ROOT), train=True, download=DOWNLOAD, transform=transform)
            val_set = datasets.CIFAR10(str(ROOT), train=False, download=DOWNLOAD, transform=transform)
            class_names = [str(name) for name in train_set.classes]
            return first(train_set, TRAIN_SAMPLES), first(val_set, VAL_SAMPLES), class_names
        '''
    )
    return Section(join_sections([_files_constants(plan), functions]), _VISION)


def _csv(plan: ScriptPlan) -> Section:
    data = plan.experiment.data
    if data.text_column is not None:
        raise ExperimentError(
            "data.text_column: export-script does not write CSV text columns yet; train it "
            'with `workbench train`, or export a text model (data.name = "text")'
        )
    constants = "\n".join(
        [
            f"CSV_PATH = {literal(data.path)}",
            f"LABEL_COLUMN = {literal(data.label_column)}",
            f"DELIMITER = {literal(plan.options['delimiter'])}",
        ]
    )
    reader = block(
        '''
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
            lookup = {name: index for index, name in enumerate(class_names)}
            x = torch.tensor(features, dtype=torch.float32)
            y = torch.tensor([lookup[label] for label in labels], dtype=torch.int64)
            return x, y, class_names
        '''
    )
    load = "def load_data():\n    x, y, class_names = read_table()\n"
    load += "    train_set, val_set = tensor_splits(x, y)\n"
    if plan.options["standardize"]:
        load += block(
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
        load += "\n"
    load += "    return train_set, val_set, class_names"
    text = join_sections([*_split_parts(plan), block(TENSOR_SPLITS), constants, reader, load])
    return Section(text, frozenset({"import csv", "import numpy as np", _TENSOR_DATASET}))


USABLE_IMAGE = """
def usable_image(path):
    \"\"\"What Torch Workbench trains on: readable images of at most MAX_IMAGE_PIXELS pixels
    (it names the files it skips; this script skips them silently).\"\"\"
    if not path.lower().endswith(IMG_EXTENSIONS):
        return False
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:
        return False
    return width * height <= MAX_IMAGE_PIXELS
"""


def _image_folder(plan: ScriptPlan) -> Section:
    """Images through the engine's own steps: its resize (and a backbone's crop and
    normalisation), the augmentation on training images only, unreadable files skipped."""
    data = plan.experiment.data
    pipeline = image_pipeline(data, plan.options, experiment_preprocessing(plan.experiment))
    constants = "\n".join(
        [
            f"VAL_SPLIT = {literal(data.val_split)}",
            f"FOLDER = Path({literal(data.path)}).expanduser()",
            f"MAX_IMAGE_PIXELS = {literal(MAX_IMAGE_PIXELS)}",
            f"TRAIN_TRANSFORM = {_compose_code(pipeline.steps(train=True))}",
            f"VAL_TRANSFORM = {_compose_code(pipeline.steps(train=False))}",
        ]
    )
    loader = block(
        f'''
        def image_folder(path, transform):
            return datasets.ImageFolder(str(path), transform=transform, is_valid_file=usable_image)


        def load_data():
            """One subfolder per class; train/ + val/ (or test/) subfolders when present."""
            split_folder = next((FOLDER / n for n in {literal(SPLIT_FOLDERS)} if (FOLDER / n).is_dir()), None)
            if (FOLDER / "train").is_dir() and split_folder is not None:
                train_set = image_folder(FOLDER / "train", TRAIN_TRANSFORM)
                val_set = image_folder(split_folder, VAL_TRANSFORM)
                return train_set, val_set, list(train_set.classes)
            train_view = image_folder(FOLDER, TRAIN_TRANSFORM)
            val_view = image_folder(FOLDER, VAL_TRANSFORM)
            train_idx, val_idx = split_indices(len(train_view), VAL_SPLIT, SEED)
            return Subset(train_view, train_idx), Subset(val_view, val_idx), list(train_view.classes)
        '''
    )
    text = join_sections([constants, block(SPLIT_INDICES), block(USABLE_IMAGE), loader])
    imports = {
        "import numpy as np",
        "import torch",
        "from PIL import Image",
        "from torchvision.datasets.folder import IMG_EXTENSIONS",
        "from torchvision.transforms import v2",
    }
    return Section(text, frozenset({_SUBSET, _PATH, "from torchvision import datasets", *imports}))


def _compose_code(steps: list[Step]) -> str:
    """`v2.Compose([...])`, one step a line, each argument a literal."""
    lines = []
    for step in steps:
        args = [f"{key}={_argument_code(key, value)}" for key, value in step.arguments.items()]
        call_text = call(f"v2.{step.name}", args, used=8, indent=8)
        lines.append(textwrap.indent(call_text, " " * 8).lstrip(" ") + ",")
    body = "".join(f"\n        {line}" for line in lines)
    return f"v2.Compose(\n    [{body}\n    ]\n)"


def _argument_code(key: str, value: object) -> str:
    if key == "interpolation":
        return f"v2.InterpolationMode({literal(value)})"
    if key == "dtype" and value == "float32":
        return "torch.float32"
    return literal(value)


TEXT_BLOCKS = '''
def token_blocks(ids, stride):
    """Inputs [N, BLOCK_SIZE] starting every `stride` tokens, and their targets: the same
    tokens shifted by one (the next token at every position)."""
    count = (len(ids) - BLOCK_SIZE - 1) // stride + 1 if len(ids) > BLOCK_SIZE else 0
    index = (torch.arange(count) * stride)[:, None] + torch.arange(BLOCK_SIZE)[None, :]
    return ids[index], ids[index + 1]
'''
CHAR_TOKENS = """
    tokens = sorted(set(text))  # the vocabulary: every character of the text, sorted
    index = {char: position for position, char in enumerate(tokens)}
    ids = torch.tensor([index[char] for char in text], dtype=torch.long)"""
BYTE_TOKENS = """
    tokens = [chr(value) for value in range(256)]  # the vocabulary: the 256 byte values
    ids = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)"""


def _text(plan: ScriptPlan) -> Section:
    """The text as token ids, split and cut into blocks as the engine does (text.py)."""
    data = plan.experiment.data
    file = text_file(data.path).resolve()
    bundled = ["# Shakespeare's Sonnets, as bundled with Torch Workbench"] if not data.path else []
    constants = "\n".join(
        [
            *bundled,
            f"TEXT_PATH = {literal(str(file))}",
            f"BLOCK_SIZE = {literal(data.block_size)}",
            f"STRIDE = {literal(plan.options['stride'] or data.block_size)}",
            f"VAL_SPLIT = {literal(data.val_split)}",
        ]
    )
    tokens = BYTE_TOKENS if data.tokenizer == "byte" else CHAR_TOKENS
    loader = (
        "def load_data():\n"
        '    """The first (1 - VAL_SPLIT) of the text for training, the rest for validation."""\n'
        '    with open(TEXT_PATH, encoding="utf-8") as handle:\n'
        '        text = handle.read().removeprefix("\\ufeff")'
        f"{tokens}\n"
        + block(
            """
            n_val = math.floor(len(ids) * VAL_SPLIT) if VAL_SPLIT > 0 else 0
            train_ids, val_ids = ids[: len(ids) - n_val], ids[len(ids) - n_val :]
            train_set = TensorDataset(*token_blocks(train_ids, STRIDE))
            val_set = TensorDataset(*token_blocks(val_ids, BLOCK_SIZE))
            return train_set, val_set, tokens
            """,
            4,
        )
    )
    text = join_sections([constants, block(TEXT_BLOCKS), loader])
    return Section(text, frozenset({"import math", _TENSOR_DATASET}))
