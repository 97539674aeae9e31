"""QPRTrainer: the Hugging Face Trainer with the contrastive + QPR loss and searchable encoder folders.

What differs from the stock Trainer: the loss (gathered across ranks, scaled for DDP's gradient averaging,
its two terms logged), the collator (TrainGroups -> token batches, or index vectors in query-side mode), and
saving: every checkpoint and the final output folder is an encoder folder (backbone or LoRA adapter,
tokenizer and ``qpr_encoder.json``) that ``--encoder FOLDER`` loads directly in encode and search, and that
``SentenceTransformer(FOLDER)`` (and so MTEB) loads too (see docs/model-folders.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import AutoModel, Trainer, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.store import DenseIndex
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.training_data import TrainExample
from qpr_pyserini.model.encoder import Batch, DenseEncoder
from qpr_pyserini.model.folders import save_sentence_transformers_folder
from qpr_pyserini.model.text import TextPipeline
from qpr_pyserini.train.data import GroupSampler, TrainGroup
from qpr_pyserini.train.distributed import scale_for_ddp, world_size
from qpr_pyserini.train.loss import LossOutput
from qpr_pyserini.train.model import InstructionRetrieverModel
from qpr_pyserini.train.strength import RegularizerMonitor, term_gradient_norms

BACKBONE_PREFIX = "encoder.backbone."


def _tensors(batch: Batch) -> dict[str, Tensor]:
    return {name: value for name, value in vars(batch).items() if value is not None}


@dataclass
class GroupCollator:
    """TrainGroups -> the keyword tensors of InstructionRetrieverModel.forward (text only: no model held)."""

    text: TextPipeline
    originals: bool
    """Also tokenise the queries without instruction (needed by the regularizer)."""
    index: DenseIndex | None = None
    """Query-side mode: take passage vectors from this index instead of tokenising passages."""
    span_mark: bool = False
    """Count Promptriever's ``{?}`` mark as part of the query's span (QPRConfig.span_mark)."""
    raw_instructions: bool = False
    """Keep instructions as the rows give them, unstripped and even blank (the QPR reference's text)."""
    rows_by_flag: bool = False
    """Regularise the rows whose ``has_instruction`` flag is set (the reference's rule), not the rows with a
    non-blank instruction; rows without a flag fall back to their text."""

    def __call__(self, groups: Sequence[TrainGroup]) -> dict[str, Any]:
        text, config = self.text, self.text.config
        queries = [g.example.query for g in groups]
        instructions = [g.example.instruction for g in groups]
        formatted = text.format_queries(queries, instructions, raw=self.raw_instructions)
        spans = [(f.query_start, f.marked_end if self.span_mark else f.query_end) for f in formatted]
        batch: dict[str, Any] = {
            "query": _tensors(text.tokenize([f.text for f in formatted], config.query_max_length, spans)),
            "has_instruction": torch.tensor([self.regularized(g.example) for g in groups]),
        }
        if self.originals:
            plain = [f.text for f in text.format_queries(queries)]
            batch["original"] = _tensors(text.tokenize(plain, config.query_max_length))
        passages = [p for g in groups for p in g.passages]
        if self.index is None:
            texts = text.format_passages([p.text for p in passages], [p.title for p in passages])
            batch["passage"] = _tensors(text.tokenize(texts, config.passage_max_length))
        else:
            rows = self.index.rows_of([p.docid for p in passages])
            batch["passage_vectors"] = torch.from_numpy(self.index.vectors(rows))
        return batch

    def regularized(self, example: TrainExample) -> bool:
        """Whether the regularizer keeps this row (its flag, or a non-blank instruction)."""
        if self.rows_by_flag and example.has_instruction is not None:
            return example.has_instruction
        return bool(example.instruction and example.instruction.strip())


class SetEpochCallback(TrainerCallback):
    """Tell the GroupSampler which epoch's groups to draw (the Trainer only tells its sampler)."""

    def __init__(self, dataset: GroupSampler) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.set_epoch(int(state.epoch or 0))


def _is_peft(backbone: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(backbone, PeftModel)


def _absolute(model: str) -> str:
    """An existing relative local path made absolute (the saved folder may move); hub ids unchanged."""
    return str(Path(model).resolve()) if not model.startswith("pypi:") and Path(model).exists() else model


def saved_encoder_config(
    encoder: DenseEncoder, folder: str | Path, passage_encoder: dict[str, Any] | None
) -> EncoderConfig:
    """A saved folder's ``qpr_encoder.json``: the backbone in ``.``, or an adapter in ``.`` on the base."""
    config = encoder.config
    if _is_peft(encoder.backbone):
        files = {"model": _absolute(config.model), "tokenizer": ".", "lora": "."}
    else:
        files = {"model": ".", "tokenizer": None, "lora": None, "gguf_file": None}
    return replace(
        config,
        **files,
        merge_lora=False,
        name=Path(folder).resolve().name,
        description=f"trained by qpr_pyserini.train from {config.name or config.model}",
        passage_encoder=passage_encoder,
    )


class QPRTrainer(Trainer):
    """Trainer for InstructionRetrieverModel; saved configs record ``passage_encoder`` (query-side)."""

    def __init__(self, *args: Any, passage_encoder: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passage_encoder = passage_encoder
        self._terms: list[LossOutput] = []
        self._norms: list[dict[str, float]] = []
        self._measured_step = -1
        self.monitor = RegularizerMonitor(getattr(self.args, "qpr_inert_warning_steps", 0))
        if isinstance(self.train_dataset, GroupSampler):
            self.add_callback(SetEpochCallback(self.train_dataset))

    @property
    def encoder(self) -> DenseEncoder:
        model: InstructionRetrieverModel = self.accelerator.unwrap_model(self.model)
        return model.encoder

    # ----- loss and logging ----------------------------------------------------------------------------
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor | tuple[Tensor, LossOutput]:
        """The global loss (every rank computes the same), times the world size to undo DDP's averaging."""
        output: LossOutput = model(**inputs)
        if not torch.isfinite(output.loss.detach()).all():
            raise InputError(
                "training",
                f"the loss became {output.loss.item()} at step {self.state.global_step + 1} (contrastive "
                f"{output.contrastive.item()}, regularizer {output.regularizer.item()}); stopped before saving "
                "a broken model: lower --learning-rate, or check --temperature, --qpr-weight and the data",
            )
        if self._measure_gradients_now(model):
            self._norms.append(term_gradient_norms(model, output, self._qpr_weight(model)))
        self._terms.append(
            LossOutput(
                *(t.detach() for t in (output.loss, output.contrastive, output.regularizer)),
                statistics=output.statistics,
            )
        )
        loss = scale_for_ddp(output.loss)
        return (loss, output) if return_outputs else loss

    def _qpr_weight(self, model: torch.nn.Module) -> float:
        unwrapped: InstructionRetrieverModel = self.accelerator.unwrap_model(model)
        return unwrapped.qpr.weight

    def _measure_gradients_now(self, model: torch.nn.Module) -> bool:
        """On the first micro-batch of each optimizer step that will be logged, with the regularizer on
        (``--qpr-log-gradients``; not under DeepSpeed, whose partitioned weights autograd.grad cannot see)."""
        args = self.args
        if not getattr(args, "qpr_log_gradients", False) or not model.training or self.is_deepspeed_enabled:
            return False
        step = self.state.global_step
        if step == self._measured_step or not self._qpr_weight(model) > 0:
            return False
        logged = (step + 1) % max(int(args.logging_steps), 1) == 0 or (step == 0 and args.logging_first_step)
        if logged:
            self._measured_step = step
        return logged

    def training_step(self, *args: Any, **kwargs: Any) -> Tensor:
        """Report the unscaled loss (compute_loss scaled it by the world size for the gradient only)."""
        return super().training_step(*args, **kwargs) / world_size()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean contrastive and (unweighted) regularizer terms since the last log, the regularizer's
        distribution statistics and gradient shares (see qpr_pyserini.train.strength)."""
        if "loss" in logs and self._terms:
            logs["contrastive"] = torch.stack([t.contrastive for t in self._terms]).mean().item()
            logs["regularizer"] = torch.stack([t.regularizer for t in self._terms]).mean().item()
            with_stats = [t.statistics for t in self._terms if t.statistics]
            for name in with_stats[0] if with_stats else ():
                logs[name] = torch.stack([s[name] for s in with_stats]).mean().item()
            for name in self._norms[0] if self._norms else ():
                logs[name] = sum(n[name] for n in self._norms) / len(self._norms)
            self._terms.clear()
            self._norms.clear()
            self.monitor.observe(logs)
        super().log(logs, start_time)

    # ----- saving and resuming -------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict[str, Tensor] | None = None) -> None:
        """Write an encoder folder that sentence-transformers loads too (and the training arguments)."""
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        encoder = self.encoder
        if state_dict is not None:  # DeepSpeed / FSDP hand over the gathered weights of the whole model
            state_dict = {k.removeprefix(BACKBONE_PREFIX): v for k, v in state_dict.items()}
        config = saved_encoder_config(encoder, output_dir, self.passage_encoder)
        save_sentence_transformers_folder(encoder, output_dir, config, state_dict)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def save_merged(self, output_dir: str | Path) -> None:
        """Merge the LoRA adapter into the backbone (in place: call after training) and save a full folder."""
        encoder = self.encoder
        encoder.backbone = encoder.backbone.merge_and_unload()
        self._save(str(output_dir))

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        """Load the backbone (or adapter) weights of a checkpoint folder written by ``_save``."""
        backbone = self.encoder.backbone
        if _is_peft(backbone):
            from peft import load_peft_weights, set_peft_model_state_dict

            set_peft_model_state_dict(backbone, load_peft_weights(resume_from_checkpoint))
        else:
            saved = AutoModel.from_pretrained(resume_from_checkpoint, dtype=backbone.dtype)
            backbone.load_state_dict(saved.state_dict())
