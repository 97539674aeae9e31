"""Train an instruction-aware dense retriever with the query-preserving regularizer.

Multi-process: torchrun --nproc-per-node N -m qpr_pyserini.train CONFIG.yaml (DDP; gloo on CPU).

A config file (``CONFIG.yaml`` first, or ``--config NAME|FILE``) supplies any of the options below as keys;
options on the command line override it. ``--config qpr-reference`` is the QPR reference's whole run (the
authors' README command: Llama-3.2-1B, LoRA r16, bf16, global batch 128, ...); ``--print-config`` prints the
fully resolved settings as JSON and exits without loading anything.
Key options: --encoder (preset, encoder folder or model folder to start from), --train-data (Tevatron or
Promptriever JSONL, a save_to_disk folder or a hub id), --output-dir, --group-size, --temperature, --lora,
--qpr-weight (lambda; 0 trains plain InfoNCE, as Promptriever), --qpr-preset reference (the authors'
configuration: Promptriever's query text, raw cosines, own group, last query token, cross-entropy, weight 1,
negatives in stored order), --template (e.g. instruction-first),
--mode query-side --index INDEX (train the query encoder against an index's fixed passage vectors), and any
Hugging Face TrainingArguments (--learning-rate, --num-train-epochs, --per-device-train-batch-size, --bf16,
--gradient-accumulation-steps, --activation-checkpointing, --save-steps, --resume-from-checkpoint
FOLDER|last, --seed, ...).

OUTPUT_DIR (and each checkpoint in it) is an encoder folder: pass it as --encoder to
python -m qpr_pyserini.encode / python -m qpr_pyserini.search.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from transformers import set_seed
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import get_last_checkpoint

from qpr_pyserini.cli import run_cli
from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.training_data import Passage, TrainExample, read_training_data
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.train.arguments import (
    ArgumentParser,
    Arguments,
    TrainingArguments,
    parse_arguments,
    resolved_settings,
    split_config_options,
)
from qpr_pyserini.train.data import GroupSampler
from qpr_pyserini.train.distributed import rank
from qpr_pyserini.train.model import InstructionRetrieverModel, load_trainable_encoder
from qpr_pyserini.train.trainer import GroupCollator, QPRTrainer


def build_trainer(arguments: Arguments) -> QPRTrainer:
    """Load the encoder, data (and index), and assemble the model, collator and trainer."""
    model_args, data_args, qpr_args, train_args = arguments
    set_seed(train_args.seed)
    encoder = load_trainable_encoder(model_args)
    if qpr_args.qpr_preset == "reference":
        check_reference_encoder(encoder)
    qpr = qpr_args.to_config(causal=encoder.is_causal)
    score_dtype = encoder.backbone.dtype if train_args.score_dtype == "model" else None
    examples = read_training_data(data_args.train_data, split=data_args.train_split, limit=data_args.limit)
    if not examples:
        raise InputError(data_args.train_data, "no training rows")
    index = passage_encoder = None
    if train_args.mode == "query-side":
        index = load_index(train_args.index)
        if index.dimension != encoder.dimension:
            raise InputError(
                train_args.index,
                f"index dimension {index.dimension} differs from the encoder's {encoder.dimension}",
            )
        missing = next((p for e in examples for p in _passages(e) if not index.contains(p.docid)), None)
        if missing is not None:
            raise InputError(train_args.index, f"training passage {missing.docid!r} is not in the index")
        passage_encoder = index.record["encoder"] if index.record else None
    model = InstructionRetrieverModel(
        encoder, qpr=qpr, temperature=train_args.temperature, score_dtype=score_dtype
    )
    dataset = GroupSampler(
        examples,
        group_size=data_args.group_size,
        seed=train_args.data_seed if train_args.data_seed is not None else train_args.seed,
        **data_args.sampler_options(),
    )
    return QPRTrainer(
        model=model,
        args=train_args,
        train_dataset=dataset,
        data_collator=GroupCollator(
            encoder.text,
            originals=qpr.enabled,
            index=index,
            span_mark=qpr.span_mark,
            raw_instructions=data_args.instruction_text == "raw",
            rows_by_flag=qpr_args.qpr_rows == "flag",
        ),
        passage_encoder=passage_encoder,
    )


def check_reference_encoder(encoder: DenseEncoder) -> None:
    """The reference scores cosines of EOS-pooled embeddings: refuse an encoder that cannot give them."""
    config = encoder.config
    if not config.normalize:
        raise InputError(
            "--qpr-preset", "'reference' scores cosines: the encoder must L2-normalise (--normalize true)"
        )
    if encoder.is_causal and (config.pooling != "last" or not config.append_eos):
        raise InputError(
            "--qpr-preset",
            f"'reference' pools a causal decoder at its appended EOS token; this encoder pools "
            f"{config.pooling!r} with append_eos {config.append_eos}: add --pooling last --append-eos true",
        )


def checkpoint_to_resume(args: TrainingArguments) -> str | None:
    """The checkpoint folder that ``--resume-from-checkpoint`` names (``last``: the newest in OUTPUT_DIR).

    Checked before anything is loaded or written, so that a wrong folder leaves nothing behind.
    """
    resume = args.resume_from_checkpoint
    if resume is None:
        return None
    if resume == "last":
        output = Path(args.output_dir)
        folder = get_last_checkpoint(str(output)) if output.is_dir() else None
        if folder is None:
            raise InputError(
                str(output), "no checkpoint-* folder to resume from (--resume-from-checkpoint last)"
            )
        return folder
    folder = Path(resume)
    if not folder.is_dir():
        raise InputError(resume, "no such checkpoint folder (--resume-from-checkpoint)")
    if not (folder / TRAINER_STATE_NAME).is_file():
        raise InputError(
            resume,
            f"not a training checkpoint (no {TRAINER_STATE_NAME}); name a checkpoint-* folder written by "
            "an earlier run (--resume-from-checkpoint)",
        )
    return str(folder)


def _passages(example: TrainExample) -> tuple[Passage, ...]:
    return (*example.positives, *example.negatives, *example.instruction_negatives)


def train(arguments: Arguments) -> Path:
    """Train, save OUTPUT_DIR (and OUTPUT_DIR/merged with --merge-lora); returns OUTPUT_DIR."""
    model_args, _, _, train_args = arguments
    resume = checkpoint_to_resume(train_args)
    trainer = build_trainer(arguments)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    output = Path(train_args.output_dir)
    if model_args.merge_lora:
        trainer.save_merged(output / "merged")
    return output


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = ArgumentParser(
        prog="python -m qpr_pyserini.train",
        usage="%(prog)s [CONFIG.json|CONFIG.yaml] [--config NAME|FILE] [--print-config] [--option value ...]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    argv = sys.argv[1:] if argv is None else argv

    def action() -> str | None:
        arguments = parse_arguments(argv, parser)
        if split_config_options(argv)[1]:
            return json.dumps(resolved_settings(arguments), indent=2, default=str)
        output = train(arguments)
        return (
            f"saved the trained encoder to {output} (use it as --encoder {output})" if rank() == 0 else None
        )

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
