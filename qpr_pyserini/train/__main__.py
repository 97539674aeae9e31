"""Train an instruction-aware dense retriever with the query-preserving regularizer.

Multi-process: torchrun --nproc_per_node N -m qpr_pyserini.train CONFIG.yaml (DDP; gloo on CPU).

A config file supplies any of the options below as keys; options on the command line override it.
Key options: --encoder (preset, encoder folder or model folder to start from), --train_data (Tevatron or
Promptriever JSONL, a save_to_disk folder or a hub id), --output_dir, --group_size, --temperature, --lora,
--qpr_weight (lambda; 0 trains plain InfoNCE, as Promptriever), --template (e.g. instruction-first),
--mode query-side --index INDEX (train the query encoder against an index's fixed passage vectors), and any
Hugging Face TrainingArguments (--learning_rate, --num_train_epochs, --per_device_train_batch_size, --bf16,
--gradient_accumulation_steps, --activation_checkpointing, --save_steps, --resume_from_checkpoint
FOLDER|last, --seed, ...).

OUTPUT_DIR (and each checkpoint in it) is an encoder folder: pass it as --encoder to
python -m qpr_pyserini.encode / python -m qpr_pyserini.search.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from transformers import set_seed

from ..cli import run_cli
from ..index import load_index
from .arguments import ArgumentParser, Arguments, parse_arguments
from .data import GroupSampler, Passage, TrainExample, read_training_data
from .distributed import rank
from .model import InstructionRetrieverModel, load_trainable_encoder
from .trainer import GroupCollator, QPRTrainer


def build_trainer(arguments: Arguments) -> QPRTrainer:
    """Load the encoder, data (and index), and assemble the model, collator and trainer."""
    model_args, data_args, qpr_args, train_args = arguments
    qpr = qpr_args.to_config()
    set_seed(train_args.seed)
    encoder = load_trainable_encoder(model_args)
    examples = read_training_data(data_args.train_data, split=data_args.train_split, limit=data_args.limit)
    if not examples:
        raise ValueError(f"{data_args.train_data}: no training rows")
    index = passage_encoder = None
    if train_args.mode == "query-side":
        index = load_index(train_args.index)
        if index.dimension != encoder.dimension:
            raise ValueError(
                f"{train_args.index}: index dimension {index.dimension} differs from the encoder's "
                f"{encoder.dimension}"
            )
        missing = next((p for e in examples for p in _passages(e) if not index.contains(p.docid)), None)
        if missing is not None:
            raise ValueError(f"{train_args.index}: training passage {missing.docid!r} is not in the index")
        passage_encoder = index.record["encoder"] if index.record else None
    model = InstructionRetrieverModel(
        encoder, qpr=qpr, temperature=train_args.temperature, allow_vacuous=train_args.allow_vacuous
    )
    dataset = GroupSampler(
        examples,
        group_size=data_args.group_size,
        instruction_negatives=data_args.instruction_negatives,
        seed=train_args.data_seed if train_args.data_seed is not None else train_args.seed,
    )
    return QPRTrainer(
        model=model,
        args=train_args,
        train_dataset=dataset,
        data_collator=GroupCollator(encoder.text, originals=qpr.enabled, index=index),
        passage_encoder=passage_encoder,
    )


def _passages(example: TrainExample) -> tuple[Passage, ...]:
    return (*example.positives, *example.negatives, *example.instruction_negatives)


def train(arguments: Arguments) -> Path:
    """Train, save OUTPUT_DIR (and OUTPUT_DIR/merged with --merge_lora); returns OUTPUT_DIR."""
    model_args, _, _, train_args = arguments
    trainer = build_trainer(arguments)
    resume = train_args.resume_from_checkpoint
    trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
    trainer.save_model()
    output = Path(train_args.output_dir)
    if model_args.merge_lora:
        trainer.save_merged(output / "merged")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m qpr_pyserini.train",
        usage="%(prog)s [CONFIG.json|CONFIG.yaml] [--option value ...]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def action() -> str | None:
        output = train(parse_arguments(sys.argv[1:] if argv is None else argv, parser))
        return (
            f"saved the trained encoder to {output} (use it as --encoder {output})" if rank() == 0 else None
        )

    return run_cli(action)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
