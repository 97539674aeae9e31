"""Training: query-span pooling, full / query-side / LoRA training, saving, resuming, the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from train_helpers import TEMPLATES, TOPICS

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.store import IndexWriter, load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.training_data import Passage, TrainExample
from qpr_pyserini.model.encoder import Batch, DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.train.__main__ import build_trainer, main, train
from qpr_pyserini.train.arguments import parse_arguments
from qpr_pyserini.train.data import TrainGroup
from qpr_pyserini.train.loss import QPRConfig, contrastive_qpr_loss
from qpr_pyserini.train.model import (
    DECODER_LORA_TARGETS,
    ENCODER_LORA_TARGETS,
    InstructionRetrieverModel,
    lora_targets,
)
from qpr_pyserini.train.trainer import GroupCollator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest)

QUERIES = ["apple fruit nutrition", "longest river"]
INSTRUCTIONS = ["Find documents about health.", "Prefer passages written for children."]
PROBE = ["learn piano", "coffee brewing"]


def cli(encoder: str | Path, data: Path, output: Path, *extra: str) -> list[str]:
    """Command-line arguments of a small, quiet run (6 rows, groups of 3, all in one batch)."""
    return [
        *("--encoder", str(encoder), "--train_data", str(data), "--output_dir", str(output)),
        *("--group_size", "3", "--per_device_train_batch_size", "6", "--temperature", "0.05"),
        *("--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "no"),
        *("--disable_tqdm", "true"),
        *extra,
    ]


def model_for(config: EncoderConfig, template: str, **qpr: object) -> InstructionRetrieverModel:
    encoder = DenseEncoder.load(replace(config, template=template))
    return InstructionRetrieverModel(encoder, qpr=QPRConfig(weight=0.5, **qpr), temperature=0.05)


# ----- the query component -------------------------------------------------------------------------------
@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("backbone", ["bert", "llama"])
@pytest.mark.parametrize("span_pooling", ["mean", "last"])
def test_query_component_pools_the_query_tokens(
    request: pytest.FixtureRequest, backbone: str, template: str, span_pooling: str
) -> None:

    model = model_for(request.getfixturevalue(backbone), template, span_pooling=span_pooling)
    encoder = model.encoder
    formatted = encoder.format_queries(QUERIES, INSTRUCTIONS)
    batch = encoder.tokenize(
        [f.text for f in formatted], 64, [(f.query_start, f.query_end) for f in formatted]
    )
    with torch.no_grad():
        aug, component = model.encode_queries(batch)
        hidden = encoder.hidden_states(batch)
    torch.testing.assert_close(aug, encoder(batch))
    for row, query in enumerate(QUERIES):
        positions = batch.span_mask[row].nonzero().squeeze(1)
        assert encoder.tokenizer.decode(batch.input_ids[row, positions]).strip() == query
        assert positions.tolist() == list(range(positions[0], positions[-1] + 1))  # one contiguous span
        tokens = hidden[row, positions]
        expected = tokens.mean(0) if span_pooling == "mean" else tokens[-1]
        torch.testing.assert_close(component[row], F.normalize(expected, dim=-1))


@pytest.mark.parametrize("template", ["promptriever", "concat"])
def test_query_first_causal_setup_is_accepted(llama: EncoderConfig, template: str, data: Path) -> None:
    """The authors' own case (causal decoder, query before instruction) trains: no refusal, no opt-in."""
    encoder = DenseEncoder.load(replace(llama, template=template))
    InstructionRetrieverModel(encoder, qpr=QPRConfig(weight=0.1), temperature=0.05)
    with pytest.raises(InputError, match="allow_vacuous"):
        parse_arguments(cli(llama.model, data, Path("unused"), "--allow_vacuous", "true"))


def test_lora_targets_per_backbone(bert: EncoderConfig, llama: EncoderConfig) -> None:
    assert lora_targets(DenseEncoder.load(llama).backbone) == list(DECODER_LORA_TARGETS)
    assert lora_targets(DenseEncoder.load(bert).backbone) == list(ENCODER_LORA_TARGETS)


# ----- the teacher pass -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", ["bert", "llama"])
def test_teacher_encodes_only_the_regularized_rows_at_their_own_width(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, backbone: str
) -> None:
    """Rows without an instruction are left out of the regularizer, so the teacher pass skips them (here the
    longest query, whose width the other rows need not be padded to); the loss is unchanged."""
    encoder = DenseEncoder.load(request.getfixturevalue(backbone)).train()
    model = InstructionRetrieverModel(encoder, qpr=QPRConfig(weight=1.0), temperature=0.05)
    rows = [
        ("apple fruit nutrition", "Find documents about health."),
        ("the longest river flowing north through africa past the pyramids to the sea", None),
        ("learn piano", "Prefer passages written for children."),
    ]
    passages = [Passage(f"d-{t}", t, TOPICS[t][1]) for t in ("apple", "river", "piano", "moon")]
    groups = [
        TrainGroup(TrainExample(f"q{n}", q, i, [passages[n]], [passages[3]]), [passages[n], passages[3]])
        for n, (q, i) in enumerate(rows)
    ]
    batch = GroupCollator(encoder.text, originals=True)(groups)
    plain = Batch(**batch["original"])
    real_lengths = plain.attention_mask.sum(1)
    with torch.no_grad():
        aug, component = model.encode_queries(Batch(**batch["query"]))
        expected = contrastive_qpr_loss(
            aug,
            encoder(Batch(**batch["passage"])),
            torch.arange(3) * 2,
            temperature=0.05,
            qpr=model.qpr,
            group_size=2,
            original=model.encode_originals(plain),  # the teacher of every row
            component=component,
            has_instruction=batch["has_instruction"],
        )
    seen: list[Batch] = []
    encode_originals = model.encode_originals
    monkeypatch.setattr(model, "encode_originals", lambda b: seen.append(b) or encode_originals(b))
    with torch.no_grad():
        ours = model(**batch)

    assert len(seen) == 1 and seen[0].input_ids.shape == (2, int(real_lengths[[0, 2]].max()))
    assert seen[0].input_ids.shape[1] < plain.input_ids.shape[1]
    assert seen[0].attention_mask.sum(1).tolist() == real_lengths[[0, 2]].tolist()
    assert ours.regularizer.item() > 1e-4
    assert ours.loss.item() == pytest.approx(expected.loss.item(), abs=1e-6)
    assert ours.regularizer.item() == pytest.approx(expected.regularizer.item(), abs=1e-6)


# ----- training ------------------------------------------------------------------------------------------
def test_loss_falls_in_full_mode(bert: EncoderConfig, data: Path, tmp_path: Path) -> None:
    trainer = build_trainer(
        parse_arguments(cli(bert.model, data, tmp_path, "--max_steps", "20", "--qpr_weight", "0.2"))
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 20
    assert {"contrastive", "regularizer"} <= set(logs[0])
    first, last = logs[0]["loss"], sum(entry["loss"] for entry in logs[-3:]) / 3
    assert last < 0.5 * first
    assert trainer.train_dataset.epoch == 19  # one batch per epoch: the sampler was told each epoch


def test_llama_trains_with_lora_and_qpr(llama: EncoderConfig, data: Path, tmp_path: Path) -> None:
    trainer = build_trainer(
        parse_arguments(cli(llama.model, data, tmp_path, "--max_steps", "3", "--lora", "--qpr_weight", "0.5"))
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3 and all(entry["regularizer"] > 0 for entry in logs)


def _index(folder: Path, config: EncoderConfig, rows: list[dict], skip: str | None = None) -> Path:
    encoder = DenseEncoder.load(config)
    passages = {
        p["docid"]: p for row in rows for key in ("positive_passages", "negative_passages") for p in row[key]
    }
    docids = sorted(d for d in passages if d != skip)
    vectors = encoder.embed_passages(
        [passages[d]["text"] for d in docids], [passages[d]["title"] for d in docids]
    )
    with IndexWriter(folder, encoder.dimension, config) as writer:
        writer.add(docids, vectors)
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_query_side_mode_trains_against_a_fixed_index(
    bert: EncoderConfig, data: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    index_dir = _index(tmp_path / "index", bert, rows)
    before = _digest(index_dir)
    out = tmp_path / "out"
    extra = ("--mode", "query-side", "--index", str(index_dir), "--max_steps", "4", "--qpr_weight", "0.2")
    trainer = build_trainer(parse_arguments(cli(bert.model, data, out, *extra)))

    index = load_index(index_dir)
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    docids = [p.docid for i in (0, 1) for p in trainer.train_dataset[i].passages]
    assert "passage" not in batch
    torch.testing.assert_close(
        batch["passage_vectors"], torch.from_numpy(index.vectors(index.rows_of(docids)))
    )

    trainer.train()
    trainer.save_model()
    assert _digest(index_dir) == before
    saved = resolve_encoder(out)
    assert saved.passage_encoder == index.record["encoder"]
    # The trained model differs from the index's encoder; the encoder it was trained against does not.
    assert saved.passage_side_mismatch(index.encoder) != []
    assert EncoderConfig.from_dict(saved.passage_encoder).passage_side_mismatch(index.encoder) == []
    trained = DenseEncoder.load(saved).embed_queries(PROBE)
    assert not torch.allclose(
        torch.from_numpy(trained), torch.from_numpy(DenseEncoder.load(bert).embed_queries(PROBE))
    )


def test_query_side_names_a_passage_missing_from_the_index(
    bert: EncoderConfig, data: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    index_dir = _index(tmp_path / "index", bert, rows, skip="d-moon")
    args = cli(bert.model, data, tmp_path / "out", "--mode", "query-side", "--index", str(index_dir))
    with pytest.raises(ValueError, match="'d-moon' is not in the index"):
        build_trainer(parse_arguments(args))


@pytest.mark.filterwarnings(
    "error::FutureWarning"
)  # peft's use of a deprecated transformers name is silenced
def test_lora_adapter_round_trips(bert: EncoderConfig, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = cli(bert.model, data, out, "--max_steps", "2", "--learning_rate", "1e-2", "--lora", "--merge_lora")
    trainer = build_trainer(parse_arguments(args))
    trainer.train()
    trainer.save_model()
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    in_memory = trainer.encoder.eval()
    expected = in_memory.embed_queries(PROBE, INSTRUCTIONS)
    loaded = DenseEncoder.load(resolve_encoder(out))
    assert loaded.config.lora == str(out.resolve()) and loaded.config.model == bert.model
    assert torch.equal(
        torch.from_numpy(loaded.embed_queries(PROBE, INSTRUCTIONS)), torch.from_numpy(expected)
    )
    base = DenseEncoder.load(bert).embed_queries(PROBE, INSTRUCTIONS)
    assert not torch.allclose(torch.from_numpy(expected), torch.from_numpy(base), atol=1e-4)

    trainer.save_merged(out / "merged")
    merged = DenseEncoder.load(resolve_encoder(out / "merged"))
    assert merged.config.lora is None
    torch.testing.assert_close(
        torch.from_numpy(merged.embed_queries(PROBE, INSTRUCTIONS)),
        torch.from_numpy(expected),
        atol=1e-5,
        rtol=0,
    )


def test_resume_from_checkpoint_continues_exactly(bert: EncoderConfig, data: Path, tmp_path: Path) -> None:
    steps = (
        "--max_steps",
        "4",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--per_device_train_batch_size",
        "3",
    )
    train(parse_arguments(cli(bert.model, data, tmp_path / "a", *steps)))
    checkpoint = tmp_path / "a" / "checkpoint-2"
    assert resolve_encoder(checkpoint).model == str(
        checkpoint.resolve()
    )  # every checkpoint is an encoder folder
    shutil.copytree(checkpoint, tmp_path / "b" / "checkpoint-2")
    train(parse_arguments(cli(bert.model, data, tmp_path / "b", *steps, "--resume_from_checkpoint", "last")))
    straight = load_file(tmp_path / "a" / "checkpoint-4" / "model.safetensors")
    again = load_file(tmp_path / "b" / "checkpoint-4" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(again[name], tensor, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["missing", "not-a-checkpoint", "last-without-checkpoints"])
def test_resume_from_a_wrong_folder_is_an_input_error_that_leaves_nothing(
    bert: EncoderConfig, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    out = tmp_path / "out"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a checkpoint")
    resume, named = {
        "missing": (str(tmp_path / "absent"), str(tmp_path / "absent")),
        "not-a-checkpoint": (str(tmp_path / "plain"), str(tmp_path / "plain")),
        "last-without-checkpoints": ("last", str(out)),
    }[kind]
    args = cli(bert.model, data, out, "--max_steps", "1", "--resume_from_checkpoint", resume)
    with pytest.raises(InputError, match="checkpoint") as caught:
        train(parse_arguments(args))
    assert caught.value.path == named
    assert not out.exists()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named}: ") and err.count("\n") == 1
    assert not out.exists()


# ----- the command line ----------------------------------------------------------------------------------
def test_cli_trains_from_a_json_config(
    bert: EncoderConfig, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "model"
    config = {
        "encoder": bert.model,
        "train_data": str(data),
        "output_dir": str(out),
        "group_size": 3,
        "per_device_train_batch_size": 3,
        "num_train_epochs": 1,
        "qpr_weight": 0.5,
        "qpr_candidates": "group",
        "activation_checkpointing": True,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    (tmp_path / "train.json").write_text(json.dumps(config))
    assert main([str(tmp_path / "train.json"), "--template", "instruction-first"]) == 0
    assert f"--encoder {out}" in capsys.readouterr().out
    saved = resolve_encoder(out)
    assert saved.template == "instruction-first" and saved.model == str(out.resolve())
    assert DenseEncoder.load(saved).embed_queries(PROBE, INSTRUCTIONS).shape == (2, 32)


def test_yaml_config_and_command_line_precedence(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text(
        "train_data: rows.jsonl\noutput_dir: out\nqpr_weight: 0.3\nlora_target_modules: [query, value]\n"
    )
    model, data, qpr, training = parse_arguments([str(tmp_path / "train.yaml"), "--qpr_weight", "0.7"])
    assert (data.train_data, training.output_dir, model.lora_target_modules) == (
        "rows.jsonl",
        "out",
        ["query", "value"],
    )
    assert qpr.to_config() == QPRConfig(weight=0.7)
    assert data.sampler_options() == {
        "instruction_negatives": 3,
        "order": "random",
        "positive": "rotate",
        "instruction_rows": "instruction",
    }
    assert training.remove_unused_columns is False and training.temperature == 0.01


@pytest.mark.parametrize(
    "config, extra, message",
    [
        ({"train_data": "x.jsonl", "output_dir": "o"}, ["--mode", "query-side"], "query-side' needs --index"),
        ({"train_data": "x.jsonl", "bogus": 1}, [], "bad.json: unknown argument(s): bogus"),
        ({"output_dir": "o"}, [], "train_data"),
        (
            {"train_data": "missing.jsonl", "output_dir": "o", "encoder": "no-such-preset"},
            [],
            "no-such-preset",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, config: dict, extra: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(config))
    assert main([str(tmp_path / "bad.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--qpr_weight", "nan"),  # was: the regularizer silently off
        ("--qpr_weight", "inf"),  # was: a saved model of non-finite tensors
        ("--qpr_temperature", "nan"),
        ("--temperature", "nan"),
        ("--learning_rate", "inf"),
        ("--lora_dropout", "nan"),
    ],
)
def test_non_finite_float_options_are_refused_before_training(
    bert: EncoderConfig, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, option: str, value: str
) -> None:
    out = tmp_path / "out"
    assert main(cli(bert.model, data, out, "--max_steps", "1", option, value)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {option.replace('_', '-')}: must be") and value in err, err
    assert not out.exists()


def test_a_non_finite_loss_stops_training_before_saving(
    bert: EncoderConfig, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A finite but absurd weight overflows the loss: the run stops with one error line and saves nothing."""
    out = tmp_path / "out"
    assert main(cli(bert.model, data, out, "--max_steps", "2", "--qpr_weight", "1e300")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: training: the loss became inf at step 1"), err[-3:]
    assert not list(out.rglob("*.safetensors"))


def test_the_regularizer_config_refuses_non_finite_numbers() -> None:
    for options in ({"weight": float("nan")}, {"weight": float("inf")}, {"temperature": float("nan")}):
        with pytest.raises(InputError, match="must be a finite number"):
            QPRConfig(**options)
