"""Which model encodes the queries of a search: a passed model, a named encoder or the index's own, checked
against the encoder that built the index."""

from __future__ import annotations

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.store import DenseIndex
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.search.shards import ShardedIndex

Searchable = DenseIndex | ShardedIndex


def check_compatible(index: Searchable, config: EncoderConfig, dimension: int) -> None:
    """Refuse a query encoder whose passage-side settings or dimension differ from the index's encoder."""
    if dimension != index.dimension:
        raise InputError(
            str(index.path), f"index dimension {index.dimension} != query encoder dimension {dimension}"
        )
    recorded = index.encoder
    if recorded is not None:
        mismatch = recorded.passage_side_mismatch(config)
        if mismatch and config.passage_encoder is not None:
            # A query-side model (qpr_pyserini.train --mode query-side) records the passage encoder it was
            # trained against: it belongs with indexes built by that encoder.
            trained_against = EncoderConfig.from_dict(config.passage_encoder, "passage_encoder")
            mismatch = recorded.passage_side_mismatch(trained_against)
        if mismatch:
            raise InputError(
                str(index.path),
                "index was built by a different encoder ("
                + "; ".join(mismatch)
                + "); pass --force to search anyway",
            )


def refuse_with_model(**names: object) -> None:
    """One source of truth: with a model object passed, an argument naming another encoder is an InputError."""
    given = [name for name, value in names.items() if value is not None]
    if given:
        raise InputError(given[0], "names an encoder, but a model object is passed too: pass one of them")


def with_settings(model: DenseEncoder, **overrides: object) -> DenseEncoder:
    """``model`` with the non-None ``overrides`` applied to its configuration (same weights and tokenizer).

    A passed model is thus configured exactly as the encoder it was loaded from would be with the same
    overrides; ``model`` itself is left unchanged.
    """
    config = resolve_encoder(model.config, **overrides)
    if config == model.config:
        return model
    return model.reconfigured(config)


def query_encoder_for(
    index: Searchable,
    encoder: str | EncoderConfig | None,
    template: str | None,
    device: str,
    model: DenseEncoder | None = None,
    backend: str = "torch",
) -> DenseEncoder:
    """The query-side model: ``model``, else the named encoder, else the one the index records.

    ``template`` overrides the encoder's template in every case; ``encoder`` together with ``model`` is an
    InputError.
    """
    if model is not None:
        refuse_with_model(encoder=encoder)
        return with_settings(model, template=template)
    if encoder is None and index.encoder is None:
        raise InputError(
            str(index.path), "index has no qpr_index.json encoder record (Pyserini-built?): pass --encoder"
        )
    return DenseEncoder.load(resolve_encoder(encoder or index.encoder, template=template), device, backend)
