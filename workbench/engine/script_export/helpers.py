"""The small functions an exported script's loop calls: device or process group, loss and
accuracy helpers, and the seeded data loaders."""

from __future__ import annotations

from workbench.engine.devices import AUTO_ORDER
from workbench.engine.script_export.rules import ScriptPlan, ddp_backends, functional_loss
from workbench.engine.script_export.text import Section, block, join_sections, literal

_AVAILABLE = {"cuda": "torch.cuda.is_available()", "mps": "torch.backends.mps.is_available()"}
_CORRECT = {
    "argmax": "(output.argmax(dim=1) == target.view(-1)).sum()",
    "sign": "((output.view(-1) > 0).long() == target.view(-1).long()).sum()",
}
_DDP_IMPORTS = frozenset(
    {
        "import os",
        "import datetime",
        "import torch.distributed as dist",
        "from torch.utils.data.distributed import DistributedSampler",
    }
)

FORMATTING = """
def percent(value):
    return "n/a" if value is None else f"{value:.2%}"


def number(value):
    return "n/a" if value is None else f"{value:.4f}"
"""

LOADER_GENERATOR = '''
def loader_generator():
    """The DataLoader's own generator (it seeds worker processes). Without it, every new
    loader iterator draws from torch's global random numbers, which Dropout uses."""
    return torch.Generator().manual_seed(SEED)
'''


def helpers_section(plan: ScriptPlan) -> Section:
    device = _ddp_setup(plan) if plan.ddp else _pick_device()
    parts = [
        device,
        block(FORMATTING),
        _loss_helpers(plan),
        _count_correct(plan),
        block(LOADER_GENERATOR),
        _train_loader(plan),
    ]
    imports = {"import torch", "from torch.utils.data import DataLoader"}
    if plan.ddp:
        imports |= _DDP_IMPORTS
    elif plan.experiment.data.shuffle:
        imports.add("from torch.utils.data import RandomSampler")
    if _loss_helpers(plan):
        imports.add("from torch import nn")
    return Section(join_sections(parts), frozenset(imports))


def _pick_device() -> str:
    """The engine's "auto": the first kind present in its order, else the CPU."""
    checks = "".join(
        f"    if {_AVAILABLE[kind]}:\n        return torch.device({literal(kind)})\n"
        for kind in AUTO_ORDER
    )
    return (
        "def pick_device():\n"
        '    if DEVICE != "auto":\n'
        "        return torch.device(DEVICE)\n"
        f"{checks}"
        '    return torch.device("cpu")'
    )


def _ddp_setup(plan: ScriptPlan) -> str:
    use_cuda = "torch.cuda.is_available()" if plan.ddp_cuda_when_available else "False"
    on_cuda, on_cpu = (literal(backend) for backend in ddp_backends())
    return block(
        f'''
        def setup_distributed():
            """Join the process group torchrun set up (or a one-process group without torchrun)."""
            for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                               ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
                os.environ.setdefault(key, value)
            rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            local_rank = int(os.environ["LOCAL_RANK"])
            use_cuda = {use_cuda}
            if use_cuda:
                device = torch.device("cuda", local_rank)
                torch.cuda.set_device(device)
            else:
                device = torch.device("cpu")
            backend = DDP_BACKEND if DDP_BACKEND != "auto" else ({on_cuda} if use_cuda else {on_cpu})
            timeout = datetime.timedelta(seconds=DDP_TIMEOUT_SECONDS)
            dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)
            return rank, world_size, device
        '''
    )


def _loss_helpers(plan: ScriptPlan) -> str:
    function = functional_loss(plan)
    if function is None:
        return ""
    if plan.next_token:
        return block(
            f'''
            def loss_fn(output, target):
                """The next token at every position: [batch, length, vocab] scores against
                [batch, length] ids, as one [batch * length] classification."""
                return nn.functional.{function}(output.flatten(0, -2), target.flatten())
            '''
        )
    return block(
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


def _count_correct(plan: ScriptPlan) -> str:
    if plan.next_token:
        return "def count_correct(output, target):\n    return 0  # next tokens: scored by loss"
    if plan.accuracy_rule is None:
        reason = (
            "one output and this loss: nothing to count"
            if plan.reports_accuracy
            else "a regression loss with one output: no accuracy"
        )
        return f"def count_correct(output, target):\n    return 0  # {reason}"
    return f"def count_correct(output, target):\n    return int({_CORRECT[plan.accuracy_rule]})"


def _train_loader(plan: ScriptPlan) -> str:
    data = plan.experiment.data
    workers = "num_workers=NUM_WORKERS, " if data.num_workers else ""
    workers += "generator=loader_generator()"
    if plan.ddp:
        return block(
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
                    {workers}
                )
            '''
        )
    if not data.shuffle:
        return block(
            f"""
            def make_train_loader(train_set, epoch):
                return DataLoader(
                    train_set, batch_size=BATCH_SIZE, drop_last=DROP_LAST, {workers}
                )
            """
        )
    return block(
        f'''
        def make_train_loader(train_set, epoch):
            """The epoch's batches, shuffled by a generator seeded SEED + epoch: the same order on
            every run, and the one Torch Workbench uses."""
            sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(SEED + epoch))
            return DataLoader(
                train_set, batch_size=BATCH_SIZE, sampler=sampler, drop_last=DROP_LAST,
                {workers}
            )
        '''
    )
