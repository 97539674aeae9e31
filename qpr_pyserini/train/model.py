"""The trained model: a DenseEncoder plus the contrastive + query-preserving objective.

One forward pass over the instruction-augmented queries gives both ``e_aug`` (the encoder's pooling) and the
query component ``e_qc`` (pooling over the query's own tokens, from the same hidden states); the original
queries (the teacher) are encoded separately, only when the regularizer is on, only for the rows it keeps
(those with an instruction), and under ``torch.no_grad`` when its gradient is stopped. Passages are encoded
by the same encoder (full mode) or come as fixed vectors from an index (query-side mode). Everything is
gathered across ranks before the loss, so each rank computes the global loss with every rank's passages as
negatives.

In a causal decoder with the query before the instruction (Promptriever's template, the reference's case),
the query's tokens never see the instruction, so ``e_qc`` equals the plain query's hidden state at the same
position; the teacher ``e_orig`` is pooled elsewhere (at EOS), so the two distributions differ and the
regularizer trains the query tokens' own states to carry the query's relevance.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import Batch, DenseEncoder, peft_quietly, pool
from qpr_pyserini.train.arguments import ModelArguments
from qpr_pyserini.train.distributed import gather_with_grad, global_targets
from qpr_pyserini.train.loss import LossOutput, QPRConfig, contrastive_qpr_loss

DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ENCODER_LORA_TARGETS = ("query", "key", "value", "dense")


class InstructionRetrieverModel(torch.nn.Module):
    """Owns the encoder and the loss: ``forward`` returns the (global) LossOutput of one local batch.

    ``score_dtype`` None casts pooled states to float32 before normalising and scoring (the encoder's own
    inference precision); a dtype (e.g. the backbone's bfloat16) normalises and scores in it, as the QPR
    reference does with its bf16 model.
    """

    def __init__(
        self,
        encoder: DenseEncoder,
        *,
        qpr: QPRConfig,
        temperature: float,
        score_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.qpr = qpr
        self.temperature = temperature
        self.score_dtype = score_dtype

    def finish(self, pooled: Tensor) -> Tensor:
        """Pooled states -> embeddings in the scoring precision (normalised when the encoder normalises)."""
        if self.score_dtype is None:
            return self.encoder.finish(pooled)
        pooled = pooled.to(self.score_dtype)
        return F.normalize(pooled, dim=-1) if self.encoder.config.normalize else pooled

    def embed(self, batch: Batch) -> Tensor:
        """The encoder's pooled embeddings of a token batch, in the scoring precision."""
        hidden = self.encoder.hidden_states(batch)
        return self.finish(pool(hidden, batch.attention_mask, self.encoder.config.pooling))

    def encode_queries(self, queries: Batch) -> tuple[Tensor, Tensor | None]:
        """e_aug, and e_qc when the regularizer is on, pooled from one pass over the augmented queries."""
        hidden = self.encoder.hidden_states(queries)
        aug = self.finish(pool(hidden, queries.attention_mask, self.encoder.config.pooling))
        if not self.qpr.enabled:
            return aug, None
        if queries.span_mask is None:
            raise ValueError("the regularizer needs the query span masks (tokenize with spans)")
        return aug, self.finish(pool(hidden, queries.span_mask, self.qpr.span_pooling))

    def encode_originals(self, originals: Batch) -> Tensor:
        """e_orig, the teacher: the plain queries' embeddings (no autograd when its gradient is stopped)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.qpr.stop_gradient):
            return self.embed(originals)

    def encode_teacher_passages(self, passages: Batch) -> Tensor:
        """The teacher's own passage embeddings (``teacher_passages`` reencode): a second pass, in the
        model's current mode (dropout on while training), without autograd when the teacher is stopped."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.qpr.stop_gradient):
            return self.embed(passages)

    def teacher(self, originals: Batch, rows: Tensor) -> Tensor:
        """e_orig of the rows the regularizer keeps (bool [B]), zeros in the others, which it leaves out.

        Only the kept rows are encoded, padded to their own width: rows without an instruction cost nothing.
        """
        dtype = self.score_dtype or torch.float32
        embeddings = torch.zeros(
            len(rows), self.encoder.dimension, device=originals.input_ids.device, dtype=dtype
        )
        if not bool(rows.any()):
            return embeddings
        index = rows.nonzero().squeeze(1)
        return embeddings.index_copy(0, index, self.encode_originals(select_rows(originals, index)))

    def forward(
        self,
        query: Mapping[str, Tensor],
        has_instruction: Tensor,
        passage: Mapping[str, Tensor] | None = None,
        passage_vectors: Tensor | None = None,
        original: Mapping[str, Tensor] | None = None,
    ) -> LossOutput:
        """Global loss of B local queries (tokenised with query-span masks) against B x group passages.

        ``passage`` is a tokenised passage batch (full mode); ``passage_vectors`` fixed passage embeddings
        (query-side mode); ``original`` the tokenised queries without instruction (needed when QPR is on).
        Passage ``k * group`` is query ``k``'s positive.
        """
        queries = Batch(**query)
        aug, component = self.encode_queries(queries)
        if passage is not None:
            passages = self.embed(Batch(**passage))
        elif passage_vectors is not None:
            passages = passage_vectors.to(aug.device, aug.dtype)
        else:
            raise ValueError("forward needs either 'passage' (token batch) or 'passage_vectors'")
        rows = aug.shape[0]
        group, remainder = divmod(passages.shape[0], rows)
        if remainder or not group:
            raise ValueError(f"{passages.shape[0]} passages do not form groups for {rows} queries")
        targets = torch.arange(rows, device=aug.device) * group

        original_emb = teacher_passages = None
        regularized = has_instruction.bool()
        if component is not None:
            if original is None:
                raise ValueError("the regularizer needs the 'original' queries (without instruction)")
            # A query truncated away entirely (long instruction first) has no span to pool.
            regularized = regularized & queries.span_mask.bool().any(1)
            original_emb = gather_with_grad(self.teacher(Batch(**original), regularized))
            component = gather_with_grad(component)
            if self.qpr.teacher_passages == "reencode" and passage is not None:
                teacher_passages = gather_with_grad(self.encode_teacher_passages(Batch(**passage)))
        return contrastive_qpr_loss(
            gather_with_grad(aug),
            gather_with_grad(passages),
            gather_with_grad(global_targets(targets, passages.shape[0])),
            temperature=self.temperature,
            qpr=self.qpr,
            group_size=group,
            original=original_emb,
            component=component,
            has_instruction=gather_with_grad(regularized),
            teacher_passages=teacher_passages,
        )

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """Called by the HF Trainer for ``--activation-checkpointing`` (or ``--gradient-checkpointing``)."""
        self.encoder.backbone.activation_checkpointing_enable(
            activation_checkpointing_kwargs=activation_checkpointing_kwargs,
            every_n_layers=every_n_layers,
            offload=offload,
        )


def select_rows(batch: Batch, rows: Tensor) -> Batch:
    """The given rows of a token batch, without the columns that are padding in every one of them."""
    mask = batch.attention_mask[rows]
    columns = mask.bool().any(0)
    span = None if batch.span_mask is None else batch.span_mask[rows][:, columns]
    return Batch(batch.input_ids[rows][:, columns], mask[:, columns], span)


def lora_targets(backbone: torch.nn.Module) -> list[str]:
    """Promptriever's projections for decoders, query/key/value/dense for BERT-style encoders."""
    linear = {
        name.rsplit(".", 1)[-1] for name, m in backbone.named_modules() if isinstance(m, torch.nn.Linear)
    }
    for candidates in (DECODER_LORA_TARGETS, ENCODER_LORA_TARGETS):
        found = [name for name in candidates if name in linear]
        if found:
            return found
    raise InputError(
        "--lora-target-modules",
        f"cannot guess the LoRA target modules for model type {backbone.config.model_type!r}; name them",
    )


def load_trainable_encoder(args: ModelArguments) -> DenseEncoder:
    """The starting encoder in train mode, with a fresh (or the configured, continued) LoRA adapter if asked.

    A starting encoder that carries an unmerged adapter continues training that adapter under ``--lora``,
    and is merged into its backbone for full fine-tuning otherwise. A backbone read from a GGUF file is
    already dequantized by transformers; it is marked as a plain model so that it saves as one.
    """
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    config = args.encoder_config()
    if args.lora and config.lora and config.merge_lora:
        raise InputError(
            "--lora",
            f"{args.encoder} merges its LoRA adapter on load: a new adapter on top could not be saved as one "
            "adapter over the base model; train it fully (no --lora) or load it with merge_lora false",
        )
    encoder = DenseEncoder.load(config, device="cpu").train()
    _drop_gguf_marker(encoder.backbone)
    backbone = encoder.backbone
    if isinstance(backbone, PeftModel):
        if args.lora:
            for name, param in backbone.named_parameters():
                param.requires_grad = "lora_" in name
        else:
            encoder.backbone = backbone.merge_and_unload()
    elif args.lora:
        config = LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=args.lora_target_modules or lora_targets(backbone),
        )
        with peft_quietly():
            encoder.backbone = get_peft_model(backbone, config)
    return encoder


def _drop_gguf_marker(backbone: torch.nn.Module) -> None:
    """Make a GGUF-loaded model (dequantized on load) a plain model that ``save_pretrained`` writes.

    transformers keeps its GGUF "quantizer" on the model and refuses to save it ("quantized with gguf and is
    not serializable"), although the weights are ordinary float tensors after loading.
    """
    quantizer = getattr(backbone, "hf_quantizer", None)
    if quantizer is not None and quantizer.quantization_config.quant_method == "gguf":
        quantizer.remove_quantization_config(backbone)
