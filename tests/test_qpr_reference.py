"""The regularizer as the QPR reference computes it (docs/method.md), checked against the formulas by hand.

The hand computations here use only the tokenizer, the backbone and torch ops, never the code under test:
``"query:  {q}{?} {i}" + EOS`` and ``"query:  {q}{?}" + EOS`` tokenised and right-padded by hand, e_aug and
e_orig taken at the EOS position, e_qc at position (plain token count incl. BOS and EOS) - 2 of the augmented
input, raw cosines over the row's own group, -sum t * log s averaged over instruction rows, weight 1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_helpers import TOPICS, tiny_bert, tiny_llama

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.training_data import Passage, TrainExample
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.templates import resolve_template
from qpr_pyserini.train.__main__ import build_trainer, main
from qpr_pyserini.train.arguments import parse_arguments
from qpr_pyserini.train.data import TrainGroup
from qpr_pyserini.train.loss import QPRConfig
from qpr_pyserini.train.model import InstructionRetrieverModel

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest)

GROUP = 3
TEMPERATURE = 0.01  # the contrastive temperature (Promptriever's, the --temperature default)
# (query, instruction or None, positive topic, negative topics): instruction rows and plain rows, one query
# ending in punctuation (no "?" added).
ROWS = [
    ("apple fruit nutrition", "Find documents about health.", "apple", ("coffee", "moon")),
    ("longest river", None, "river", ("piano", "volcano")),
    ("moon phases.", "Prefer passages written for children.", "moon", ("apple", "river")),
    ("learn piano", "Find documents about health.", "piano", ("coffee", "volcano")),
]


def reference_args(encoder: str, data: Path, output: Path, *extra: str) -> list[str]:
    return [
        *("--encoder", encoder, "--train_data", str(data), "--output_dir", str(output)),
        *("--qpr_preset", "reference", "--group_size", str(GROUP), "--save_strategy", "no"),
        *("--disable_tqdm", "true", "--report_to", "none", "--logging_steps", "1"),
        *extra,
    ]


def passage(topic: str) -> Passage:
    return Passage(f"d-{topic}", topic, TOPICS[topic][1])


def groups(rows: list[tuple]) -> list[TrainGroup]:
    return [
        TrainGroup(
            TrainExample(f"q{n}", query, instruction, [passage(pos)], [passage(t) for t in negs]),
            [passage(pos), *(passage(t) for t in negs)],
        )
        for n, (query, instruction, pos, negs) in enumerate(rows)
    ]


# ----- by hand ---------------------------------------------------------------------------------------------
def promptriever_query(query: str, instruction: str | None) -> str:
    """Promptriever's format_query with prefix "query: ": f"{prefix} {q}{?} {i}"."""
    mark = "" if query.endswith((".", "?", "!")) else "?"
    text = f"query:  {query}{mark}"
    return f"{text} {instruction}" if instruction else text


def hidden_states(
    backbone: torch.nn.Module, tokenizer: object, texts: list[str]
) -> tuple[torch.Tensor, list[int]]:
    """Last hidden states of texts tokenised with BOS, EOS appended, right-padded; and the token counts."""
    rows = [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for text in texts]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return backbone(input_ids=ids, attention_mask=mask).last_hidden_state, [len(r) for r in rows]


def at(hidden: torch.Tensor, positions: list[int]) -> torch.Tensor:
    return F.normalize(hidden[torch.arange(len(positions)), torch.tensor(positions)], dim=-1)


def reference_loss(
    encoder: DenseEncoder, rows: list[tuple]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, InfoNCE, regularizer) of the reference's objective, computed from method.md's formulas."""
    backbone, tokenizer = encoder.backbone, encoder.tokenizer
    augmented = [promptriever_query(q, i) for q, i, _, _ in rows]
    plain = [promptriever_query(q, None) for q, _, _, _ in rows]
    passages = [p for g in groups(rows) for p in g.passages]
    h_aug, n_aug = hidden_states(backbone, tokenizer, augmented)
    h_psg, n_psg = hidden_states(backbone, tokenizer, [f"{p.title} {p.text}" for p in passages])
    e_aug = at(h_aug, [n - 1 for n in n_aug])
    e_psg = at(h_psg, [n - 1 for n in n_psg])
    with torch.no_grad():  # the teacher: original query and its passages, no gradient
        h_plain, n_plain = hidden_states(backbone, tokenizer, plain)
        e_orig = at(h_plain, [n - 1 for n in n_plain])
        teacher_psg = e_psg.detach()
    e_qc = at(h_aug, [n - 2 for n in n_plain])

    targets = torch.arange(len(rows)) * GROUP
    info_nce = F.cross_entropy(e_aug @ e_psg.T / TEMPERATURE, targets)
    terms = []
    for r, (_, instruction, _, _) in enumerate(rows):
        if instruction:
            own = slice(r * GROUP, (r + 1) * GROUP)
            teacher = torch.softmax(e_orig[r] @ teacher_psg[own].T, dim=-1)
            student = torch.log_softmax(e_qc[r] @ e_psg[own].T, dim=-1)
            terms.append(-(teacher * student).sum())
    regularizer = torch.stack(terms).mean() if terms else torch.zeros(())
    return info_nce + 1.0 * regularizer, info_nce, regularizer


# ----- the tests -------------------------------------------------------------------------------------------
def test_reference_loss_and_gradient_match_an_independent_computation(
    llama: EncoderConfig, data: Path, tmp_path: Path
) -> None:
    trainer = build_trainer(parse_arguments(reference_args(llama.model, data, tmp_path)))
    model: InstructionRetrieverModel = trainer.model
    model.train()
    ours = model(**trainer.data_collator(groups(ROWS)))
    ours.loss.backward()
    our_grads = {n: p.grad.clone() for n, p in model.encoder.backbone.named_parameters()}
    model.zero_grad()

    loss, info_nce, regularizer = reference_loss(model.encoder, ROWS)
    loss.backward()
    assert regularizer.item() > 0.01  # not vacuous: the student and the teacher differ
    assert ours.contrastive.item() == pytest.approx(info_nce.item(), abs=1e-5)
    assert ours.regularizer.item() == pytest.approx(regularizer.item(), abs=1e-5)
    assert ours.loss.item() == pytest.approx(loss.item(), abs=1e-5)
    for name, param in model.encoder.backbone.named_parameters():
        torch.testing.assert_close(our_grads[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_reference_regularizer_is_skipped_without_instruction_rows(
    llama: EncoderConfig, data: Path, tmp_path: Path
) -> None:
    plain_rows = [(q, None, pos, negs) for q, _, pos, negs in ROWS]
    trainer = build_trainer(parse_arguments(reference_args(llama.model, data, tmp_path)))
    ours = trainer.model(**trainer.data_collator(groups(plain_rows)))
    loss, info_nce, regularizer = reference_loss(trainer.model.encoder, plain_rows)
    assert ours.regularizer.item() == regularizer.item() == 0.0
    assert ours.loss.item() == pytest.approx(info_nce.item(), abs=1e-5)


def test_causal_query_first_component_is_the_plain_state_at_that_position_not_the_teacher(
    llama: EncoderConfig,
) -> None:
    """Why the authors' case is not vacuous: e_qc is the plain input's state at the query's last token, while
    the teacher e_orig is pooled at EOS."""
    encoder = DenseEncoder.load(replace(llama, template="promptriever", query_prefix="query:  "))
    qpr = QPRConfig(weight=1.0, span_pooling="last", span_mark=True)
    model = InstructionRetrieverModel(encoder, qpr=qpr, temperature=TEMPERATURE)
    queries = [q for q, i, _, _ in ROWS if i]
    instructions = [i for _, i, _, _ in ROWS if i]
    formatted = encoder.format_queries(queries, instructions)
    augmented = encoder.tokenize(
        [f.text for f in formatted], 64, [(f.query_start, f.marked_end) for f in formatted]
    )
    with torch.no_grad():
        _, component = model.encode_queries(augmented)
        original = model.encode_originals(
            encoder.tokenize([f.text for f in encoder.format_queries(queries)], 64)
        )
        h_plain, n_plain = hidden_states(
            encoder.backbone, encoder.tokenizer, [promptriever_query(q, None) for q in queries]
        )
    torch.testing.assert_close(component, at(h_plain, [n - 2 for n in n_plain]), atol=1e-5, rtol=0)
    torch.testing.assert_close(original, at(h_plain, [n - 1 for n in n_plain]), atol=1e-5, rtol=0)
    assert (component - original).norm(dim=-1).min() > 0.1


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_teacher_runs_without_autograd_when_its_gradient_is_stopped(
    llama: EncoderConfig, stop_gradient: bool
) -> None:
    encoder = DenseEncoder.load(llama).train()
    model = InstructionRetrieverModel(
        encoder, qpr=QPRConfig(weight=1.0, stop_gradient=stop_gradient), temperature=TEMPERATURE
    )
    original = model.encode_originals(encoder.tokenize(["longest river", "moon phases"], 64))
    assert (original.grad_fn is None) == stop_gradient
    assert original.requires_grad != stop_gradient


def test_marked_end_includes_promptriever_mark() -> None:
    template = resolve_template("promptriever", "query:  ")
    with_instruction = template.format("is water wet", "be brief")
    assert with_instruction.text == "query:  is water wet? be brief"
    assert with_instruction.query == "is water wet"
    assert (
        with_instruction.text[with_instruction.query_start : with_instruction.marked_end] == "is water wet?"
    )
    plain = template.format("is water wet")
    assert plain.text == "query:  is water wet?" and plain.marked_end == len(plain.text)
    punctuated = template.format("Water is wet.", "be brief")
    assert punctuated.marked_end == punctuated.query_end
    concat = resolve_template("concat").format("water", "be brief")
    assert concat.marked_end == concat.query_end


# ----- the switch and the defaults ---------------------------------------------------------------------
def test_reference_preset_sets_every_choice_and_explicit_options_win(tmp_path: Path) -> None:
    model, data, qpr, training = parse_arguments(reference_args("minilm", tmp_path / "rows.jsonl", tmp_path))
    assert (model.template, model.query_prefix) == ("promptriever", "query:  ")
    assert data.sampler_options() == {
        "instruction_negatives": GROUP - 1,
        "order": "reference",
        "positive": "rotate",
        "instruction_rows": "instruction",
    }
    assert training.temperature == TEMPERATURE
    expected = QPRConfig(
        weight=1.0,
        temperature=1.0,
        direction="cross-entropy",
        stop_gradient=True,
        candidates="group",
        span_pooling="last",
        span_mark=True,
    )
    assert qpr.to_config(causal=True) == qpr.to_config(causal=False) == expected

    extra = ("--qpr_weight", "0.3", "--template", "concat", "--negatives_order", "random")
    model, data, qpr, _ = parse_arguments(reference_args("minilm", tmp_path / "rows.jsonl", tmp_path, *extra))
    assert model.template == "concat" and data.sampler_options()["order"] == "random"
    assert qpr.to_config() == replace(expected, weight=0.3)


def test_regularizer_defaults_follow_the_backbone(tmp_path: Path) -> None:
    _, _, qpr, _ = parse_arguments(
        ["--train_data", "x.jsonl", "--output_dir", str(tmp_path), "--qpr_weight", "1"]
    )
    assert qpr.to_config(causal=True) == QPRConfig(
        weight=1.0, temperature=1.0, candidates="group", span_pooling="last", span_mark=True
    )
    assert qpr.to_config(causal=False) == QPRConfig(weight=1.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"normalize": False}, "L2-normalise"), ({"pooling": "mean"}, "--pooling last --append-eos true")],
)
def test_reference_preset_refuses_an_encoder_without_eos_cosines(
    tmp_path: Path, data: Path, settings: dict, message: str
) -> None:
    config = tiny_llama(tmp_path / "model", **settings)
    with pytest.raises(InputError, match=message):
        build_trainer(parse_arguments(reference_args(config.model, data, tmp_path / "out")))


def test_reference_preset_trains_a_bidirectional_encoder(tmp_path: Path, data: Path) -> None:
    config = tiny_bert(tmp_path / "bert")
    trainer = build_trainer(
        parse_arguments(reference_args(config.model, data, tmp_path / "out", "--max_steps", "2"))
    )
    assert trainer.model.qpr.span_mark and trainer.model.qpr.candidates == "group"
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)


def test_reference_preset_trains_a_causal_decoder(llama: EncoderConfig, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = ("--max_steps", "8", "--per_device_train_batch_size", "6", "--learning_rate", "1e-2")
    trainer = build_trainer(parse_arguments(reference_args(llama.model, data, out, *extra)))
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 8 and all(entry["regularizer"] > 0 for entry in logs)
    assert sum(entry["loss"] for entry in logs[-3:]) < sum(entry["loss"] for entry in logs[:3])
    trainer.save_model()
    trained = DenseEncoder.load(resolve_encoder(out))
    assert trained.config.template == "promptriever" and trained.config.query_prefix == "query:  "
    assert trained.embed_queries(["learn piano"], ["Find documents about health."]).shape == (1, 32)


def test_reference_preset_from_the_command_line(
    llama: EncoderConfig, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main(reference_args(llama.model, data, out, "--max_steps", "1")) == 0
    assert f"--encoder {out}" in capsys.readouterr().out
    assert resolve_encoder(out).template == "promptriever"
