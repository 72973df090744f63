"""The training loop every front end runs: the CLI, the window's worker thread and each DDP rank."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.backbone_weights import load_pretrained_backbones
from workbench.engine.control import RunControl
from workbench.engine.cpu_threads import claim_intra_op_threads
from workbench.engine.datasets import make_loaders
from workbench.engine.devices import DeviceInfo, available_devices, resolve_device
from workbench.engine.early_stopping import EarlyStopping
from workbench.engine.errors import (
    DatasetError,
    ExperimentError,
    OutOfMemoryTrainingError,
    OutputError,
    TrainingError,
)
from workbench.engine.experiment import Experiment, dump_experiment
from workbench.engine.experiment_model import build_data_model, experiment_preprocessing
from workbench.engine.feature_cache import FeatureCache, cacheable_backbone
from workbench.engine.optimization import (
    count_correct,
    make_optimizer,
    make_scheduler,
    parameter_groups,
    reports_accuracy,
    scheduler_steps_on_loss,
    scheduler_steps_per_batch,
)
from workbench.engine.own_model import check_fits_loss
from workbench.engine.precision import Precision, make_precision
from workbench.engine.reports import (
    BaseObserver,
    BatchReport,
    EpochReport,
    RunStarted,
    TrainingObserver,
)
from workbench.engine.reproducibility import run_record
from workbench.engine.run_files import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    load_run_checkpoint,
    prepare_run_folder,
    restore_rng_state,
    save_tensors,
    write_experiment_copy,
    write_json,
    write_metrics_csv,
)
from workbench.engine.run_notes import backbone_notes, data_notes
from workbench.engine.strategy import SingleDeviceStrategy
from workbench.engine.task import (
    NEXT_TOKEN,
    PREDICTION,
    bits_per_token,
    check_task,
    perplexity,
    task_kind,
    task_loss,
)

Batch = tuple[torch.Tensor, torch.Tensor]
# A finite loss this many times the run's first loss (or 1, if larger) has exploded: the weights
# are far past any minimum and the run cannot recover, so it fails like a NaN loss does.
EXPLOSION_FACTOR = 1e6
CLASS_LOSSES = ("cross_entropy", "nll")
BATCH_OF_ONE = "Expected more than 1 value per channel when training"  # BatchNorm's refusal


def uses_channels_last(setting: str, model: nn.Module) -> bool:
    """channels_last pays off for 2-D convolutions (about 1.3x on this project's CPU benchmark)."""
    if setting != "auto":
        return setting == "channels_last"
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def check_outputs_fit_classes(
    output_shape: tuple[int, ...], class_names: tuple[str, ...], loss: str, dataset: str
) -> None:
    """Refuse a model with fewer outputs than the dataset has classes, before any training.

    Only for a flat output per sample; other shapes meet their own errors in the loss.
    """
    if len(output_shape) != 1:
        return
    outputs, classes = output_shape[0], len(class_names)
    if loss in CLASS_LOSSES or outputs > 1:
        fits, needed = classes <= outputs, f"{classes} outputs"
    else:  # one output: bce_with_logits tells two classes apart; mse regresses on the index
        fits, needed = loss != "bce_with_logits" or classes <= 2, "one output per class"
    if not fits:
        shown = ", ".join(class_names[:12]) + (", ..." if classes > 12 else "")
        raise ExperimentError(
            f"data: dataset {dataset!r} has {classes} classes ({shown}), but the model's last "
            f"layer gives {outputs} output(s); set its out_features = {classes} "
            f"(the model needs {needed})"
        )


class Trainer:
    """Runs one experiment. The loop is the plain PyTorch loop, with plug-ins at its seams::

        for epoch in range(1, epochs + 1):
            model.train()
            for i, (x, y) in enumerate(train_loader):
                with precision.forward_context():          # autocast, or nothing
                    loss = loss_fn(model(x), y)
                precision.backward(loss / k)               # k = accumulate_grad_batches
                if (i + 1) % k == 0 or i + 1 == len(train_loader):
                    observer.on_after_backward(model)      # optional hook: gradients are ready
                    precision.optimizer_step(optimizer)    # GradScaler under 16-mixed
                    optimizer.zero_grad()
            model.eval()
            with torch.inference_mode():
                for x, y in val_loader:
                    ...                                    # val loss and accuracy

    `prepare()` validates and builds everything (bad input raises a WorkbenchError before any
    training); `fit()` trains and returns the summary. Progress goes to the observer; stop, pause
    and single steps come from the RunControl, checked between batches.
    """

    def __init__(
        self,
        experiment: Experiment,
        observer: TrainingObserver | None = None,
        control: RunControl | None = None,
        out_dir: str | Path | None = None,
        resume_from: str | Path | None = None,
        strategy: SingleDeviceStrategy | None = None,
        devices: list[DeviceInfo] | None = None,
        initial_weights: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.experiment = experiment
        self.initial_weights = initial_weights
        self.observer: TrainingObserver = observer or BaseObserver()
        self.control = control or RunControl()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume_from = resume_from
        self.strategy = strategy or SingleDeviceStrategy()
        self._devices = devices
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.start_epoch = 1
        self._prepared = False
        self.failed_reported = False
        self._first_loss: float | None = None
        # Set by an out-of-memory rescue (engine/oom_rescue.py): it reports the failure itself.
        self.rescue_out_of_memory = False
        self.run_flags: dict[str, Any] = {}  # how the run was started, for run.json
        self.phase = "train"  # or "evaluate": where an out-of-memory error happened

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Resolve the device and precision, load data, build the model; raise on bad input."""
        train = self.experiment.train
        self.task = task_kind(self.experiment.data)
        self.strategy.setup()
        self.removed_temp_files: list[Path] = []
        if self.out_dir is not None and self.strategy.is_main:
            self.removed_temp_files = prepare_run_folder(self.out_dir)
        devices = self._devices if self._devices is not None else available_devices()
        self.device_info = resolve_device(self.strategy.device_name(train.device), devices)
        self.device = torch.device(self.device_info.name)
        self.precision: Precision = make_precision(train.precision, self.device_info)
        torch.manual_seed(train.seed)
        self.loaders = make_loaders(
            self.experiment.data,
            train.seed,
            rank=self.strategy.rank,
            world_size=self.strategy.world_size,
            preprocessing=experiment_preprocessing(self.experiment),
        )
        info = self.loaders.info
        torch.manual_seed(train.seed)  # the model's initial weights depend on the seed alone
        self.built = build_data_model(self.experiment.model, info)
        check_task(self.experiment, self.built.output_shape, info.vocab_size)
        check_fits_loss(self.built, train.loss, info.num_classes, info.name)  # own code's output
        data = self.experiment.data
        check_outputs_fit_classes(
            self.built.output_shape, info.class_names, train.loss, data.path or data.name
        )
        self.notes = [*data_notes(info), *load_pretrained_backbones(self.built.module)]
        if self.initial_weights is not None:  # e.g. weights the user loaded into the stack
            self.built.module.load_state_dict(self.initial_weights)
        self.notes += backbone_notes(self.built.module, train.backbone_lr_factor)
        self.channels_last = uses_channels_last(
            self.experiment.train.memory_format, self.built.module
        )
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = self.built.module.to(self.device).to(memory_format=memory_format)
        self.wrapped = self.strategy.wrap_model(self.model, self.device)
        self.compiled = torch.compile(self.wrapped) if train.compile else None
        self.optimizer = make_optimizer(parameter_groups(self.model, train), train)
        self.steps_per_epoch = math.ceil(len(self.loaders.train) / train.accumulate_grad_batches)
        self.scheduler = make_scheduler(
            self.optimizer, train.scheduler, train.epochs, self.steps_per_epoch
        )
        self.loss_fn = task_loss(train.loss, self.task)
        self.with_accuracy = self.task == PREDICTION and reports_accuracy(
            train.loss, self.built.output_shape[-1]
        )
        # Next-token runs count tokens too: every position of a sample is a prediction.
        self.tokens_per_sample = info.input_shape[0] if self.task == NEXT_TOKEN else None
        self.early_stopping = EarlyStopping.from_spec(train.early_stopping)
        self.feature_cache = self._feature_cache()
        if self.resume_from is not None:
            state = load_run_checkpoint(self.resume_from)
            try:
                self._restore(state)
            except (LookupError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                detail = (str(exc).strip().splitlines() or [""])[0][:160]
                raise TrainingError(
                    f"{self.resume_from}: cannot resume from it ({type(exc).__name__}: {detail}): "
                    "it is not a checkpoint.pt as `workbench train` writes it; resume from the "
                    "checkpoint.pt of an earlier run"
                ) from None
        self._prepared = True

    def _feature_cache(self) -> FeatureCache | None:
        backbone, why_not = cacheable_backbone(self.built, self.experiment)
        if backbone is None:
            if why_not:
                self.notes.append(f"Feature cache off: {why_not}")
            return None
        return FeatureCache(backbone, self.out_dir, self.strategy.rank)

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(
                f"{self.resume_from}: this checkpoint does not fit the experiment's model or "
                f"optimizer ({str(exc).splitlines()[0]}); resume with the experiment it was made by"
            ) from None
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state.get("precision", {}))
        if self.early_stopping is not None and state.get("early_stopping"):
            self.early_stopping.load_state_dict(state["early_stopping"])
        self.step = int(state["step"])
        self.start_epoch = int(state["epoch"]) + 1
        self.history = list(state.get("history", []))
        restore_rng_state(state["rng"])

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or a stop, early stop or failure); return the run summary."""
        if not self._prepared:
            self.prepare()
        claim_intra_op_threads()
        started = time.perf_counter()
        try:
            summary = self._fit(started)
        except TrainingError as exc:
            self._report_failure(str(exc))
            with contextlib.suppress(OutputError):  # the failure above is the news
                self._write_files(self._summary(started, status="failed"), weights=False)
            raise
        except (OutputError, DatasetError) as exc:  # a full disk, an unreadable image, ...
            self._report_failure(str(exc))
            raise
        except torch.OutOfMemoryError:
            message = (
                f"out of memory on {self.device_info.name} with batch size "
                f"{self.experiment.data.batch_size}; use a smaller batch with "
                "accumulate_grad_batches to keep the effective batch, or enable mixed precision"
            )
            if not self.rescue_out_of_memory:
                self._report_failure(message)
            raise OutOfMemoryTrainingError(message) from None
        except Exception as exc:
            if isinstance(exc, ValueError) and BATCH_OF_ONE in str(exc):
                message = (
                    "a training batch of 1 sample reached a BatchNorm layer that is training, "
                    "and BatchNorm needs at least 2; set data.drop_last = true, or a "
                    "data.batch_size that does not leave 1 sample over "
                    f"({self.loaders.train.dataset_size} training samples per process)"
                )
                self._report_failure(message)
                raise TrainingError(message) from None
            error = self._error_in_model_code(exc)
            if error is None:
                raise
            self._report_failure(error)
            self._write_files(self._summary(started, status="failed"), weights=False)
            raise TrainingError(error) from None
        finally:
            if self.feature_cache is not None:
                self.feature_cache.detach()
            self.strategy.teardown()
        self.observer.on_finished(summary)
        return summary

    def _error_in_model_code(self, exc: Exception) -> str | None:
        """The failure as an error in the user's own model code (their file and line), or
        None when the model is not from code or their code is not where it failed."""
        code = self.built.code
        error = code.error_in_code(exc, "training") if code is not None else None
        return None if error is None else str(error)

    def _report_failure(self, message: str) -> None:
        self.failed_reported = True
        self.observer.on_failed(message)

    def _fit(self, started: float) -> dict[str, Any]:
        train = self.experiment.train
        self.observer.on_started(self._started_report())
        if self.removed_temp_files:
            names = ", ".join(path.name for path in self.removed_temp_files)
            self.observer.on_log(f"Removed temp files an interrupted save left behind: {names}")
        baseline = self.loaders.info.baseline_loss
        if baseline is not None and self.start_epoch == 1:
            self.observer.on_log(
                f"Unigram baseline: a model that ignores the context scores Val Loss "
                f"{baseline:.4f} (perplexity {perplexity(baseline):.2f}); learning goes below it"
            )
        for note in self.notes:
            self.observer.on_log(note)
        if self.feature_cache is not None:
            self.loaders = self.feature_cache.attach(self.loaders, self.device, self.precision)
            self.observer.on_log(self.feature_cache.note)
        status = "completed"
        for epoch in range(self.start_epoch, train.epochs + 1):
            epoch_started = time.perf_counter()
            result = self._train_epoch(epoch)
            if result is None:
                status = "stopped"
                break
            report = self._finish_epoch(epoch, result, time.perf_counter() - epoch_started)
            self.observer.on_epoch_end(report)
            epoch_model = getattr(self.observer, "on_epoch_model", None)
            if epoch_model is not None:  # optional hook: e.g. a sample of generated text
                epoch_model(self.strategy.unwrap(self.wrapped), report)
            self._after_epoch(report)
            if self.early_stopping is not None and self._should_stop_early(report):
                status = "early_stopped"
                break
        if self.early_stopping is not None and self.early_stopping.best_state is not None:
            self.model.load_state_dict(self.early_stopping.best_state)
            self.observer.on_log(
                f"Restored the best weights (epoch {self.early_stopping.best_epoch})"
            )
        summary = self._summary(started, status)
        self._write_files(summary)
        return summary

    def _started_report(self) -> RunStarted:
        data, train = self.experiment.data, self.experiment.train
        return RunStarted(
            epochs=train.epochs,
            batches_per_epoch=len(self.loaders.train),
            train_size=self.loaders.info.train_size,
            val_size=self.loaders.info.val_size,
            parameters=self.built.total_parameters,
            device=self.device_info.name,
            precision=self.precision.name,
            world_size=self.strategy.world_size,
            effective_batch_size=data.batch_size
            * train.accumulate_grad_batches
            * self.strategy.world_size,
            start_epoch=self.start_epoch,
        )

    def _train_epoch(self, epoch: int) -> tuple[float, float, int, float] | None:
        """One pass over the training data; None when a stop was requested."""
        self.phase = "train"
        train = self.experiment.train
        k = train.accumulate_grad_batches
        loader = self.loaders.train
        loader.set_epoch(epoch)
        batches = len(loader)
        self.wrapped.train()
        loss_sum, samples = 0.0, 0
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        epoch_started = time.perf_counter()
        for index, (x, y) in enumerate(loader):
            if index % k == 0 and not self.control.wait_for_next_step():
                return None
            x, y = self._to_device(x, y)
            boundary = (index + 1) % k == 0 or index + 1 == batches
            with self._sync_context(boundary):
                with self.precision.forward_context():
                    output = self._forward(x)
                    loss = self.loss_fn(output, y)
                self.precision.backward(loss / k if k > 1 else loss)
            loss_value = loss.item()
            self._check_loss(loss_value, f"at epoch {epoch}, batch {index}")
            if self.with_accuracy:
                correct += count_correct(output.detach(), y, train.loss)
            loss_sum += loss_value * len(y)
            samples += len(y)
            if boundary:
                self._optimizer_step()
            elapsed = max(time.perf_counter() - epoch_started, 1e-9)
            self.observer.on_batch_end(
                BatchReport(epoch, index, batches, loss_value, self.step, samples / elapsed)
            )
        return loss_sum, float(correct.item()), samples, time.perf_counter() - epoch_started

    def _check_loss(self, value: float, where: str) -> None:
        """The run ends on a NaN or infinite loss, and on one that explodes past any recovery."""
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss became {value} {where}; lower the learning rate "
                f"(now {self._lr():g}) or set gradient_clip_val"
            )
        if self._first_loss is None:
            self._first_loss = value
        if value > EXPLOSION_FACTOR * max(self._first_loss, 1.0):
            raise TrainingError(
                f"the loss became {value:.3g} {where}, up from {self._first_loss:.3g} at the "
                f"start; lower the learning rate (now {self._lr():g}) or set gradient_clip_val"
            )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass, through torch.compile when train.compile is set."""
        if self.compiled is None:
            return self.wrapped(x)  # type: ignore[no-any-return]
        try:
            return self.compiled(x)  # type: ignore[no-any-return]
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure gets the same advice
            text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
            raise TrainingError(
                f"train.compile: torch.compile failed on this machine ({text}); set "
                "train.compile = false to train without it"
            ) from None

    def _sync_context(self, boundary: bool) -> Any:
        return contextlib.nullcontext() if boundary else self.strategy.no_sync(self.wrapped)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        if x.device == self.device:
            return x, y
        non_blocking = self.device.type == "cuda"
        return x.to(self.device, non_blocking=non_blocking), y.to(
            self.device, non_blocking=non_blocking
        )

    def _optimizer_step(self) -> None:
        # Optional hook (not every observer has it): the last moment the step's gradients exist,
        # since zero_grad(set_to_none=True) drops them right after the step. Under 16-mixed they
        # still carry the GradScaler's loss scale here.
        after_backward = getattr(self.observer, "on_after_backward", None)
        if after_backward is not None:
            after_backward(self.model)
        clip = self.experiment.train.gradient_clip_val
        if clip is not None:
            self.precision.unscale(self.optimizer)
            nn.utils.clip_grad_norm_(self.wrapped.parameters(), clip)
        self.precision.optimizer_step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        per_batch = scheduler_steps_per_batch(self.experiment.train.scheduler)
        # OneCycle raises if stepped past its planned total (the last epoch's partial step).
        if per_batch and self.scheduler.last_epoch < self.scheduler.total_steps:
            self.scheduler.step()

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _finish_epoch(
        self, epoch: int, result: tuple[float, float, int, float], seconds: float
    ) -> EpochReport:
        """Reduce the epoch's sums over ranks, validate, report; `seconds` includes validation."""
        loss_sum, correct, samples, train_seconds = result
        train_loss, train_correct, train_samples, val_loss, val_correct, val_samples = (
            self.strategy.reduce_sum(
                torch.tensor([loss_sum, correct, samples, *self._evaluate()], dtype=torch.float64)
            ).tolist()
        )
        if val_samples and not math.isfinite(val_loss):
            raise TrainingError(
                f"the validation loss became {val_loss / val_samples} at epoch {epoch}; lower "
                f"the learning rate (now {self._lr():g}) or set gradient_clip_val"
            )
        lr = self._lr()
        next_token = self.task == NEXT_TOKEN
        train_mean = train_loss / max(train_samples, 1)
        val_mean = val_loss / val_samples if val_samples else None
        speed = train_samples / max(train_seconds, 1e-9)  # all ranks together
        report = EpochReport(
            epoch=epoch,
            epochs=self.experiment.train.epochs,
            train_loss=train_mean,
            train_accuracy=train_correct / train_samples
            if self.with_accuracy and train_samples
            else None,
            val_loss=val_mean,
            val_accuracy=val_correct / val_samples if self.with_accuracy and val_samples else None,
            lr=lr,
            samples_per_second=speed,
            elapsed_seconds=seconds,
            skipped_steps=self.precision.skipped_steps,
            train_perplexity=perplexity(train_mean) if next_token else None,
            val_perplexity=perplexity(val_mean) if next_token else None,
            val_bits_per_char=bits_per_token(val_mean) if next_token else None,
            tokens_per_second=speed * self.tokens_per_sample if self.tokens_per_sample else None,
        )
        self._step_epoch_scheduler(report)
        return report

    def _step_epoch_scheduler(self, report: EpochReport) -> None:
        spec = self.experiment.train.scheduler
        if self.scheduler is None or scheduler_steps_per_batch(spec):
            return
        if scheduler_steps_on_loss(spec):
            self.scheduler.step(
                report.val_loss if report.val_loss is not None else report.train_loss
            )
        else:
            self.scheduler.step()

    def evaluate_batches(self, batches: Iterable[Batch]) -> tuple[float, float, int]:
        """Summed loss, correct count and sample count of the model on `batches` (this rank)."""
        self.phase = "evaluate"
        self.wrapped.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        samples = 0
        with torch.inference_mode(), self.precision.forward_context():
            for x, y in batches:
                x, y = self._to_device(x, y)
                output = self.wrapped(x)
                loss_sum += self.loss_fn(output, y).double() * len(y)
                if self.with_accuracy:
                    correct += count_correct(output, y, self.experiment.train.loss)
                samples += len(y)
        return float(loss_sum.item()), float(correct.item()), samples

    def _evaluate(self) -> tuple[float, float, int]:
        if len(self.loaders.val) == 0:
            return 0.0, 0.0, 0
        return self.evaluate_batches(self.loaders.val)

    def _should_stop_early(self, report: EpochReport) -> bool:
        assert self.early_stopping is not None
        stop = self.early_stopping.update(report, self.strategy.unwrap(self.wrapped))
        stop = self.strategy.broadcast_flag(stop)
        if stop:
            self.observer.on_log(
                f"Early stopping at epoch {report.epoch}: {self.early_stopping.monitor} has not "
                f"improved for {self.early_stopping.patience} epochs"
            )
        return stop

    def _after_epoch(self, report: EpochReport) -> None:
        self.history.append(dataclasses.asdict(report))
        if self.out_dir is not None and self.strategy.is_main:
            self._save_checkpoint(report.epoch)
            # Every epoch, so that a run killed mid-way still shows its curves in the run list.
            write_metrics_csv(self.out_dir / "metrics.csv", self.history)

    # ------------------------------------------------------------------ files

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to resume after `epoch`, loadable with weights_only=True."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.strategy.unwrap(self.wrapped).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "precision": self.precision.state_dict(),
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
            "epoch": epoch,
            "step": self.step,
            "rng": capture_rng_state(),
            "history": self.history,
            "experiment": dump_experiment(self.experiment),
        }

    def _save_checkpoint(self, epoch: int) -> None:
        assert self.out_dir is not None
        save_tensors(self.checkpoint_state(epoch), self.out_dir / "checkpoint.pt")

    def _summary(self, started: float, status: str) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        train_loss, train_accuracy = last.get("train_loss"), last.get("train_accuracy")
        if status in ("completed", "early_stopped") and self.history:
            train_loss, train_accuracy = self._final_train_metrics()
        wall = time.perf_counter() - started
        epochs_done = int(last.get("epoch", self.start_epoch - 1))
        speeds = [row["samples_per_second"] for row in self.history]
        next_token = self.task == NEXT_TOKEN
        token_speeds = [row.get("tokens_per_second") or 0.0 for row in self.history]
        return {
            "status": status,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": last.get("val_loss"),
            "val_accuracy": last.get("val_accuracy"),
            "epochs_completed": epochs_done,
            "steps": self.step,
            "samples_per_second": sum(speeds) / len(speeds) if speeds else 0.0,
            "wall_seconds": wall,
            "parameters": self.built.total_parameters,
            "precision": self.precision.name,
            "device": self.device_info.name,
            "world_size": self.strategy.world_size,
            "effective_batch_size": self._started_report().effective_batch_size,
            "skipped_steps": self.precision.skipped_steps,
            "best_epoch": self.early_stopping.best_epoch if self.early_stopping else None,
            "task": self.task,
            "train_perplexity": perplexity(train_loss) if next_token else None,
            "val_perplexity": perplexity(last.get("val_loss")) if next_token else None,
            "val_bits_per_char": bits_per_token(last.get("val_loss")) if next_token else None,
            "tokens_per_second": sum(token_speeds) / len(token_speeds)
            if next_token and token_speeds
            else None,
            "unigram_val_loss": self.loaders.info.baseline_loss,
            "compiled": self.compiled is not None,
        }

    def _final_train_metrics(self) -> tuple[float, float | None]:
        """Loss and accuracy of the final model on the training data, in eval mode."""
        self.loaders.train.set_epoch(0)
        loss_sum, correct, samples = self.strategy.reduce_sum(
            torch.tensor(self.evaluate_batches(self.loaders.train), dtype=torch.float64)
        ).tolist()
        accuracy = correct / samples if self.with_accuracy and samples else None
        return loss_sum / max(samples, 1), accuracy

    def _write_files(self, summary: dict[str, Any], weights: bool = True) -> None:
        """Write the run's files (rank 0 only); a failed run keeps its last good model.pth."""
        if self.out_dir is None or not self.strategy.is_main:
            return
        out = self.out_dir
        if weights:
            save_tensors(self.strategy.unwrap(self.wrapped).state_dict(), out / "model.pth")
        write_metrics_csv(out / "metrics.csv", self.history)
        write_json(out / "summary.json", summary)
        write_experiment_copy(out / "experiment.toml", self.experiment)
        write_json(out / "run.json", run_record(self.device_info, self.experiment, self.run_flags))
