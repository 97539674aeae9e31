"""Worker for tests/test_train_dist.py, launched by torchrun with 2 processes (gloo, CPU).

argv: ENCODER_FOLDER TRAIN_JSONL OUT_DIR. Every rank first computes, without any process group, the
single-process reference on the whole 4-row batch (loss and gradient). It then takes one real QPRTrainer
step (DDP, 2 rows per rank, SGD with learning rate 1) and records the loss it computed, the width of the
passage matrix the loss saw, and the gradient (weights before - after). Writes ``rank{r}.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import qpr_pyserini.train.model as model_module
from qpr_pyserini.io.training_data import read_training_data
from qpr_pyserini.train.__main__ import build_trainer
from qpr_pyserini.train.arguments import ModelArguments, parse_arguments
from qpr_pyserini.train.data import GroupSampler
from qpr_pyserini.train.loss import QPRConfig
from qpr_pyserini.train.model import InstructionRetrieverModel, load_trainable_encoder
from qpr_pyserini.train.trainer import GroupCollator

ROWS, GROUP, TEMPERATURE, QPR = 4, 3, 0.05, QPRConfig(weight=0.5)


def reference(encoder_dir: str, data: str) -> tuple[float, dict[str, torch.Tensor], list[str]]:
    """Loss and gradients of the whole batch in one process (no process group yet)."""
    encoder = load_trainable_encoder(ModelArguments(encoder=encoder_dir))
    model = InstructionRetrieverModel(encoder, qpr=QPR, temperature=TEMPERATURE)
    dataset = GroupSampler(read_training_data(data), group_size=GROUP, seed=42)
    loss = model(**GroupCollator(encoder.text, originals=True)([dataset[i] for i in range(ROWS)])).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads, [dataset.examples[i].query_id for i in range(ROWS)]


def main(encoder_dir: str, data: str, out_dir: Path) -> None:
    torch.set_num_threads(1)
    ref_loss, ref_grads, ref_queries = reference(encoder_dir, data)

    seen: dict[str, object] = {}
    original_loss = model_module.contrastive_qpr_loss

    def recording_loss(aug: torch.Tensor, passages: torch.Tensor, targets: torch.Tensor, **kwargs: object):
        seen.update(rows=aug.shape[0], passages=passages.shape[0], targets=targets.tolist())
        output = original_loss(aug, passages, targets, **kwargs)
        seen.update(loss=output.loss.item())
        return output

    model_module.contrastive_qpr_loss = recording_loss
    args = [
        *("--encoder", encoder_dir, "--train_data", data, "--output_dir", str(out_dir / "run")),
        *("--group_size", str(GROUP), "--per_device_train_batch_size", str(ROWS // 2), "--max_steps", "1"),
        *("--temperature", str(TEMPERATURE), "--qpr_weight", str(QPR.weight), "--limit", str(ROWS)),
        *(
            "--optim",
            "sgd",
            "--learning_rate",
            "1",
            "--lr_scheduler_type",
            "constant",
            "--max_grad_norm",
            "0",
        ),
        *("--weight_decay", "0", "--logging_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true"),
    ]
    trainer = build_trainer(parse_arguments(args))
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    local_queries: list[str] = []
    collate = trainer.data_collator

    def recording_collate(groups: list) -> dict:
        local_queries.extend(g.example.query_id for g in groups)
        return collate(groups)

    trainer.data_collator = recording_collate
    trainer.train()
    after = dict(trainer.model.named_parameters())
    grad_diff = max(
        (before[name] - after[name].detach() - grad).abs().max().item() for name, grad in ref_grads.items()
    )
    rank = int(os.environ["RANK"])
    result = {
        "rank": rank,
        "world_size": int(os.environ["WORLD_SIZE"]),
        "ref_loss": ref_loss,
        "ref_queries": ref_queries,
        "local_queries": local_queries,
        "loss": seen["loss"],
        "logged_loss": trainer.state.log_history[0]["loss"],
        "rows": seen["rows"],
        "passages": seen["passages"],
        "targets": seen["targets"],
        "grad_max_diff": grad_diff,
        "grad_max": max(g.abs().max().item() for g in ref_grads.values()),
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
