"""The whole reference run (``--config qpr-reference``) against a re-implementation of the authors' code.

``their_item`` re-implements ``Idea3TrainDataset.__getitem__`` with ``format_query`` / ``format_passage``
(deu05232/Inst_IR_QPR ``src/tevatron/retriever/dataset.py``), ``their_tokens`` ``Idea3TrainCollator``
(``collator.py``: BOS, truncation to max_len - 1, EOS, right padding) and ``their_loss``
``Idea3TevatronTrainer.compute_loss`` + ``DenseModel_Idea3_reduced_KL.forward`` (the teacher's query *and*
passage pass under no_grad, scores in the model's dtype, the student at position plain length - 2). Only the
tokenizer, the backbone and torch ops are used, never the code under test. Their ``random.choices`` draws
from the process-wide generator; here it gets the per-row generator ours uses, so the rule is compared.

The rows make every choice matter: an instruction with surrounding whitespace, a row flagged
``has_instruction`` with a blank instruction, a row without instruction that has instruction negatives, a
row with several positives and fewer hard negatives than slots, titles empty or padded with spaces.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.train.__main__ import build_trainer, main
from qpr_pyserini.train.arguments import accumulation_for, parse_arguments
from qpr_pyserini.train.trainer import QPRTrainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest)

GROUP = 6
SEED = 42
TEMPERATURE = 0.01


def psg(docid: str, text: str, title: str = "") -> dict:
    return {"docid": docid, "title": title, "text": text}


APPLE = psg("d-apple", "red apples are sweet fruit rich in fibre ", "  apple ")
RIVER = psg("d-river", "the nile is the longest river flowing north through africa", "")
PIANO = psg("d-piano", " practice scales daily to learn the piano keyboard", "piano")
VOLCANO = psg("d-volcano", "magma rises and the volcano erupts with ash and lava", "")
COFFEE = psg("d-coffee", "grind beans and brew coffee with hot water for flavour", " coffee")
MOON = psg("d-moon", "the moon waxes and wanes through its phases every month", "moon")
ROWS = [
    {  # instruction with surrounding whitespace; enough hard negatives: stored order
        "query_id": "a",
        "only_query": "apple fruit nutrition",
        "only_instruction": "  Find documents about health. ",
        "has_instruction": True,
        "positive_passages": [APPLE],
        "negative_passages": [RIVER, PIANO, VOLCANO, COFFEE, MOON],
        "new_negatives": [MOON],
    },
    {  # flagged, blank instruction: regularised by the flag, text "query:  learn piano? "
        "query_id": "b",
        "only_query": "learn piano",
        "only_instruction": "",
        "has_instruction": True,
        "positive_passages": [PIANO],
        "negative_passages": [RIVER, VOLCANO, COFFEE, MOON, APPLE],
        "new_negatives": [],
    },
    {  # no instruction, but instruction negatives: they go first on every row
        "query_id": "c",
        "only_query": "longest river",
        "only_instruction": "",
        "has_instruction": False,
        "positive_passages": [RIVER],
        "negative_passages": [PIANO, VOLCANO, COFFEE, MOON, APPLE],
        "new_negatives": [VOLCANO, APPLE],
    },
    {  # five positives; d_inst + new negatives; 4 hard negatives < 5 slots: drawn with replacement
        "query_id": "d",
        "only_query": "moon phases.",
        "only_instruction": "Prefer passages written for children.",
        "has_instruction": True,
        "positive_passages": [MOON, *(psg(f"d-moon{k}", f"moon {k}", f"m{k}") for k in range(4))],
        "negative_passages": [APPLE, RIVER, PIANO, COFFEE],
        "new_negatives": [VOLCANO],
        "d_inst_negatives": [COFFEE],
    },
]


# ----- their code, re-implemented --------------------------------------------------------------------------
def format_query(query: str, prefix: str) -> str:
    added = "" if query.strip()[-1] in [".", "?", "!"] else "?"
    return f"{prefix} {query.strip()}{added}".strip()


def format_passage(text: str, title: str, prefix: str) -> str:
    return f"{prefix} {title.strip()} {text.strip()}".strip()


def their_item(row: dict, item: int, rng: random.Random, epoch: int = 0) -> tuple[str, list[str], str, int]:
    """Idea3TrainDataset.__getitem__ (query prefix "query: ", passage prefix "passage: ", negatives_first_n)."""
    only = format_query(row["only_query"], "query: ")
    query = only + " " + row["only_instruction"] if row["has_instruction"] else only
    positives, negatives = row["positive_passages"], row["negative_passages"]
    chosen = [positives[(hash(item + SEED) + epoch) % len(positives)]]
    size = GROUP - 1
    first = row.get("d_inst_negatives", []) + row["new_negatives"]
    remaining = size - len(first)
    if len(negatives) < size:
        chosen += first + (rng.choices(negatives, k=remaining) if remaining > 0 else [])
    else:
        chosen += first + (negatives * 2)[:remaining] if remaining > 0 else first
    assert len(chosen) == GROUP
    return (
        query,
        [format_passage(p["text"], p["title"], "passage: ") for p in chosen],
        only,
        int(row["has_instruction"]),
    )


def their_tokens(tokenizer: object, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Idea3TrainCollator: BOS, truncation to max_len - 1, EOS appended, right padding."""
    rows = [
        tokenizer(t, truncation=True, max_length=max_len - 1, add_special_tokens=True)["input_ids"]
        + [tokenizer.eos_token_id]
        for t in texts
    ]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def their_loss(
    backbone: torch.nn.Module, tokenizer: object, items: list[tuple], score_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, InfoNCE, regularizer): the teacher pass first (query and passages, no_grad), then the student.

    ``score_dtype`` casts the pooled states before normalising (None: the model's own dtype, as theirs)."""
    queries = [i[0] for i in items]
    passages = [p for i in items for p in i[1]]
    plain = [i[2] for i in items]
    flags = torch.tensor([i[3] for i in items])

    def reps(ids: torch.Tensor, mask: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = hidden[torch.arange(len(ids)), mask.sum(1) - 1]
        student = hidden[torch.arange(len(ids)), at]
        cast = (lambda x: x) if score_dtype is None else (lambda x: x.to(score_dtype))
        return F.normalize(cast(pooled), dim=-1), F.normalize(cast(student), dim=-1)

    q_ids, q_mask = their_tokens(tokenizer, queries, 304)
    p_ids, p_mask = their_tokens(tokenizer, passages, 196)
    o_ids, o_mask = their_tokens(tokenizer, plain, 304)
    with torch.no_grad():  # get_scores_q: the plain queries and a second passage pass
        o_reps, _ = reps(o_ids, o_mask, o_mask.sum(1) - 1)
        teacher_p, _ = reps(p_ids, p_mask, p_mask.sum(1) - 1)
        score_q = o_reps @ teacher_p.T
    q_reps, only_q_reps = reps(q_ids, q_mask, o_mask.sum(1) - 2)
    p_reps, _ = reps(p_ids, p_mask, p_mask.sum(1) - 1)
    scores = q_reps @ p_reps.T
    target = torch.arange(len(items)) * GROUP
    info_nce = F.cross_entropy(scores / TEMPERATURE, target)
    rows = flags.nonzero().view(-1)
    own = torch.stack([torch.arange(r * GROUP, (r + 1) * GROUP) for r in rows.tolist()])
    student = (only_q_reps @ p_reps.T)[rows.unsqueeze(1), own]
    teacher = torch.softmax(score_q[rows.unsqueeze(1), own].detach(), dim=-1)
    regularizer = -torch.mean(torch.sum(torch.log_softmax(student, dim=-1) * teacher, dim=-1))
    return info_nce + regularizer, info_nce, regularizer


def their_items() -> list[tuple]:
    return [their_item(row, i, random.Random(f"{SEED}:0:{i}")) for i, row in enumerate(ROWS)]


# ----- ours ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    """The tiny random Llama (train_helpers) with room for the run's 304 query tokens (RoPE: no weights)."""
    from train_helpers import tiny_llama

    config = tiny_llama(tmp_path_factory.mktemp("llama"))
    path = Path(config.model) / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "max_position_embeddings": 512}))
    return config


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def run_args(encoder: str, data: Path, output: Path, *extra: str) -> list[str]:
    """The shipped configuration on a tiny model: fp32 on CPU, deterministic (no LoRA dropout), small group."""
    return [
        *("--config", "qpr-reference", "--encoder", encoder, "--train-data", str(data)),
        *("--output-dir", str(output), "--group-size", str(GROUP), "--per-device-train-batch-size", "4"),
        *("--global-batch-size", "4", "--dtype", "float32", "--bf16", "false", "--score-dtype", "float32"),
        *("--lora-dropout", "0", "--activation-checkpointing", "false", "--report-to", "none"),
        *("--save-strategy", "no", "--disable-tqdm", "true", "--logging-steps", "1"),
        *extra,
    ]


def our_trainer(encoder: str, data: Path, output: Path, *extra: str) -> QPRTrainer:
    trainer = build_trainer(parse_arguments(run_args(encoder, data, output, *extra)))
    trainer.model.train()
    return trainer


def our_batch(trainer: QPRTrainer) -> dict:
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(ROWS))])


def test_their_rows_exercise_every_choice() -> None:
    """The rows are not degenerate: each alternative rule would give other groups or texts."""
    items = their_items()
    assert items[1][0] == "query:  learn piano? " and items[0][0].endswith("health. ")
    assert items[0][1][0] == "passage:  apple red apples are sweet fruit rich in fibre"
    assert items[1][1][1] == "passage:   the nile is the longest river flowing north through africa"
    assert [p.split()[-1] for p in items[2][1][1:3]] == ["lava", "fibre"]  # instruction negatives, no instr.
    assert items[3][1][0] == "passage:  moon the moon waxes and wanes through its phases every month"
    stored = [format_passage(p["text"], p["title"], "passage: ") for p in ROWS[3]["negative_passages"][:3]]
    assert items[3][1][3:] != stored  # drawn with replacement, not the stored order


@pytest.mark.parametrize("tokenizer_side", ["right", "left"])
def test_the_reference_run_matches_their_code(
    llama: EncoderConfig, rows_file: Path, tmp_path: Path, tokenizer_side: str
) -> None:
    """Loss, both terms and every LoRA gradient, fp32, with the tokenizer padding on either side (their
    collator always pads right, and so does the configuration)."""
    model_dir = Path(llama.model)
    if tokenizer_side == "left":
        model_dir = tmp_path / "left"
        tokenizer = AutoTokenizer.from_pretrained(llama.model)
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(model_dir)
        for name in ("config.json", "model.safetensors", "qpr_encoder.json"):
            (model_dir / name).write_bytes((Path(llama.model) / name).read_bytes())
    trainer = our_trainer(str(model_dir), rows_file, tmp_path / "out")
    model = trainer.model
    assert model.qpr.teacher_passages == "reencode"
    ours = model(**our_batch(trainer))
    ours.loss.backward()
    trainable = {n: p for n, p in model.encoder.backbone.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    our_grads = {n: p.grad.clone() for n, p in trainable.items()}
    model.zero_grad()

    loss, info_nce, regularizer = their_loss(model.encoder.backbone, model.encoder.tokenizer, their_items())
    loss.backward()
    assert ours.contrastive.item() == pytest.approx(info_nce.item(), abs=1e-5)
    assert ours.regularizer.item() == pytest.approx(regularizer.item(), abs=1e-5)
    assert ours.loss.item() == pytest.approx(loss.item(), abs=1e-5)
    for name, param in trainable.items():
        torch.testing.assert_close(our_grads[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_left_padding_gives_their_right_padded_loss(
    llama: EncoderConfig, rows_file: Path, tmp_path: Path
) -> None:
    """Their collator pads right and finds the student by counting tokens; ours finds it by the query's
    span, so padding left (RoPE positions are relative) gives the same loss."""
    trainer = our_trainer(llama.model, rows_file, tmp_path / "out", "--padding-side", "left")
    batch = our_batch(trainer)
    assert (batch["query"]["attention_mask"][:, 0] == 0).any()  # some rows are padded on the left
    with torch.no_grad():
        ours = trainer.model(**batch)
        loss, _, _ = their_loss(
            trainer.model.encoder.backbone, trainer.model.encoder.tokenizer, their_items()
        )
    assert ours.loss.item() == pytest.approx(loss.item(), abs=1e-4)


@pytest.mark.parametrize(
    "override",
    [
        ("--positive-choice", "rotate"),
        ("--negatives-order", "stored"),
        ("--instruction-negatives-rows", "instruction"),
        ("--qpr-rows", "text"),
        ("--instruction-text", "stripped"),
        ("--passage-format", "joined"),
        ("--passage-prefix", "passage:  "),
        ("--query-prefix", "query: "),
        ("--qpr-span-mark", "false"),
    ],
)
def test_each_choice_of_the_run_changes_the_loss(
    llama: EncoderConfig, rows_file: Path, tmp_path: Path, override: tuple[str, str]
) -> None:
    """Changing any one choice away from theirs moves the loss off the re-implementation's."""
    trainer = our_trainer(llama.model, rows_file, tmp_path / "out", *override)
    with torch.no_grad():
        ours = trainer.model(**our_batch(trainer))
        loss, _, _ = their_loss(
            trainer.model.encoder.backbone, trainer.model.encoder.tokenizer, their_items()
        )
    assert abs(ours.loss.item() - loss.item()) > 1e-4


def test_bf16_scores_match_their_bf16_model(llama: EncoderConfig, rows_file: Path, tmp_path: Path) -> None:
    """bf16 weights with scores in bf16 (--score-dtype model) match theirs; fp32 scores do not."""
    extra = ("--dtype", "bfloat16", "--score-dtype", "model")
    trainer = our_trainer(llama.model, rows_file, tmp_path / "out", *extra)
    backbone, tokenizer = trainer.model.encoder.backbone, trainer.model.encoder.tokenizer
    assert backbone.dtype == torch.bfloat16
    with torch.no_grad():
        ours = trainer.model(**our_batch(trainer))
        _, info_nce, regularizer = their_loss(backbone, tokenizer, their_items())
        _, info_nce_fp32, _ = their_loss(backbone, tokenizer, their_items(), score_dtype=torch.float32)
    assert ours.contrastive.dtype == torch.bfloat16
    assert ours.contrastive.item() == pytest.approx(info_nce.item(), abs=1e-6)
    assert ours.regularizer.item() == pytest.approx(regularizer.item(), abs=2e-2)
    assert abs(info_nce_fp32.item() - info_nce.item()) > 1e-2  # the precision is visible in the loss


@pytest.mark.parametrize("teacher_passages", ["reencode", "shared"])
def test_teacher_scores_its_own_passage_pass_with_its_own_dropout(
    llama: EncoderConfig,
    rows_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    teacher_passages: str,
) -> None:
    """With LoRA dropout on (train mode), the re-encoded teacher passages are another dropout draw of the
    same passages, outside autograd; shared ones are the student's."""
    import qpr_pyserini.train.model as model_module

    seen: dict = {}
    original = model_module.contrastive_qpr_loss

    def spy(*args: object, **kwargs: object) -> object:
        seen.update(passages=args[1], teacher=kwargs["teacher_passages"])
        return original(*args, **kwargs)

    monkeypatch.setattr(model_module, "contrastive_qpr_loss", spy)
    extra = ("--lora-dropout", "0.5", "--qpr-teacher-passages", teacher_passages)
    trainer = our_trainer(llama.model, rows_file, tmp_path / "out", *extra)
    with torch.no_grad():  # LoRA B starts at zero: give the adapter an effect, so dropout shows
        for name, param in trainer.model.encoder.backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    trainer.model(**our_batch(trainer))
    if teacher_passages == "shared":
        assert seen["teacher"] is None
        return
    teacher, passages = seen["teacher"], seen["passages"]
    assert not teacher.requires_grad and passages.requires_grad
    assert teacher.shape == passages.shape
    assert not torch.allclose(teacher, passages.detach(), atol=1e-4)  # a second dropout draw
    trainer.model.eval()  # dropout off: the two passes agree
    trainer.model(**our_batch(trainer))
    torch.testing.assert_close(seen["teacher"], seen["passages"].detach(), atol=1e-5, rtol=0)


def test_data_order_is_sequential(llama: EncoderConfig, rows_file: Path, tmp_path: Path) -> None:
    trainer = our_trainer(llama.model, rows_file, tmp_path / "out")
    assert list(trainer._get_train_sampler()) == list(range(len(ROWS)))
    shuffled = our_trainer(llama.model, rows_file, tmp_path / "out", "--train-sampling-strategy", "random")
    assert list(shuffled._get_train_sampler()) != list(range(len(ROWS))) or len(ROWS) < 3


# ----- the configuration itself ----------------------------------------------------------------------------
THEIR_RUN = {  # the README's "w/ Regularization" command and the code's defaults
    "encoder": {
        "model": "meta-llama/Llama-3.2-1B",
        "pooling": "last",
        "append_eos": True,
        "normalize": True,
        "padding_side": "right",
        "dtype": "bfloat16",
        "template": "promptriever",
        "query_prefix": "query:  ",
        "passage_prefix": "passage: ",
        "passage_format": "tevatron",
        "query_max_length": 304,
        "passage_max_length": 196,
    },
    "model": {
        "lora": True,
        "lora_r": 16,
        "lora_alpha": 64,
        "lora_dropout": 0.1,
        "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj", "up_proj", "gate_proj"],
    },
    "data": {
        "group_size": 16,
        "sampler": {
            "instruction_negatives": 15,
            "order": "reference",
            "positive": "reference",
            "instruction_rows": "all",
        },
        "instruction_text": "raw",
    },
    "qpr": {
        "qpr_weight": 1.0,
        "qpr_temperature": 1.0,
        "qpr_direction": "cross-entropy",
        "qpr_stop_gradient": True,
        "qpr_candidates": "group",
        "qpr_span_pooling": "last",
        "qpr_span_mark": True,
        "qpr_teacher_passages": "reencode",
        "qpr_rows": "flag",
    },
    "training": {
        "learning_rate": 1e-4,
        "warmup_steps": 100,
        "num_train_epochs": 1,
        "per_device_train_batch_size": 16,
        "gradient_accumulation_steps": 8,
        "temperature": 0.01,
        "score_dtype": "model",
        "bf16": True,
        "train_sampling_strategy": "sequential",
        "seed": 42,
        "data_seed": 42,
    },
    "batch": {"world_size": 1, "rows_per_optimizer_step": 128},
}


def test_print_config_shows_their_run(capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", "qpr-reference", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for section, expected in THEIR_RUN.items():
        got = printed[section]
        assert {k: got[k] for k in expected} == expected, section


@pytest.mark.parametrize(("gpus", "accumulation"), [(1, 8), (2, 4), (4, 2), (8, 1)])
def test_global_batch_of_128_on_any_gpu_count(gpus: int, accumulation: int) -> None:
    assert accumulation_for(128, 16, gpus) == accumulation


def test_explicit_options_win_over_the_configuration(tmp_path: Path) -> None:
    extra = (
        "--lora-r",
        "8",
        "--gradient-accumulation-steps",
        "3",
        "--encoder",
        "minilm",
        "--qpr-weight",
        "0.5",
    )
    model, data, qpr, training = parse_arguments(
        ["--config", "qpr-reference", "--output-dir", str(tmp_path), *extra]
    )
    assert (model.lora_r, training.gradient_accumulation_steps, model.encoder) == (8, 3, "minilm")
    assert qpr.qpr_weight == 0.5 and qpr.qpr_teacher_passages == "reencode"
    assert data.train_data == "deu05232/promptriever-ours-v8-vanilla"


def test_a_local_backbone_folder_replaces_the_hub_id(llama: EncoderConfig, tmp_path: Path) -> None:
    model, _, _, _ = parse_arguments(["--config", "qpr-reference", "--encoder", llama.model])
    config = model.encoder_config()
    assert config.model == llama.model and config.passage_format == "tevatron"
    hub, _, _, _ = parse_arguments(["--config", "qpr-reference"])
    assert hub.encoder_config().model == "meta-llama/Llama-3.2-1B"


def test_the_configuration_trains_and_saves_a_searchable_model(
    llama: EncoderConfig, rows_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(run_args(llama.model, rows_file, out, "--max-steps", "2")) == 0
    trained = resolve_encoder(out)
    assert trained.passage_format == "tevatron" and trained.lora == str(out.resolve())
    from qpr_pyserini.model.encoder import DenseEncoder

    encoder = DenseEncoder.load(trained)
    assert encoder.embed_queries(["learn piano"], ["Find documents about health."]).shape == (1, 32)


def test_a_saved_tokenizer_is_read_without_the_gguf_file(llama: EncoderConfig) -> None:
    """A LoRA adapter trained over a GGUF base saves the tokenizer beside it; reading it must not look for the
    GGUF file there (the base's file is only in the base's folder)."""
    from dataclasses import replace

    from qpr_pyserini.model.text import TextPipeline

    config = replace(llama, gguf_file="base.Q4_1.gguf", tokenizer=llama.model)
    assert TextPipeline.load(config).tokenizer.eos_token == "</s>"
