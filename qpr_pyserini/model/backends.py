"""Inference backends: a backbone run by ONNX Runtime or OpenVINO instead of torch.

:func:`export_backbone` exports a backbone (token ids + attention mask -> last hidden states) once to ONNX with
``torch.onnx.export``, traced on a sample batch; the file is cached under ``cache_root()`` keyed by the
weights, model class and exporter settings (:func:`export_path`), and :func:`make_runner` opens a session over
it. This module sees backbones and batches only: which backend an encoder runs is the encoder's own choice
(``DenseEncoder.use_backend``), and pooling, normalisation and the text side stay there, so a backend changes
only which library multiplies the matrices (names in ``qpr_pyserini.config.BACKENDS``):

- ``torch``: eager PyTorch (the default);
- ``onnx``: ONNX Runtime, fp32 (extra ``qpr_pyserini[onnx]``);
- ``openvino``: OpenVINO reading the same ONNX file, fp32 (inference precision pinned to f32, so CPUs with
  bf16 units do not silently lower it; extra ``qpr_pyserini[openvino]``);
- ``openvino-bf16``: OpenVINO at bfloat16 inference precision (its default on CPUs with bf16 units, such as
  AVX-512 BF16 or AMX): an opt-in precision whose vectors differ from fp32 (docs/performance.md measures it);
- ``onnx-int8``: ONNX Runtime over a dynamically quantised copy (int8 weights, activations quantised per
  batch): an opt-in precision whose vectors differ from fp32 (docs/performance.md measures its cost).

Exported backends run on the CPU with ``torch.get_num_threads()`` threads, and only for inference: a pass
that needs gradients runs the torch backbone (see ``DenseEncoder.hidden_states``).

Two keys name an export. ``DenseEncoder.load`` keys it by the model folder's files (``model_folder_key``: the
configuration and weight files, hashed), so that a later load with a cached export never builds the torch
backbone (it stays unloaded until something needs it, such as a gradient pass); an encoder already in memory
(perhaps trained since) is keyed by its weights as they are (``loaded_weights_key``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from qpr_pyserini.config import BACKENDS
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.text import Batch

if TYPE_CHECKING:
    from transformers import PretrainedConfig

EXTRAS = {
    "onnx": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "onnx"),
    "openvino-bf16": ("openvino", "onnx"),
    "onnx-int8": ("onnxruntime", "onnx"),
}
OPENVINO_PRECISION = {"openvino": "f32", "openvino-bf16": "bf16"}
# What a model folder's weights can be stored as (transformers' formats, sharded or not, and GGUF)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json")
OPSET = 17
EXPORT_ATTENTION = "eager"  # a smaller graph than SDPA's masking, and one that ONNX Runtime's optimizer fuses
FUSED_MODEL_TYPES = (
    "bert",
)  # ONNX Runtime's BERT fusions (Attention, EmbedLayerNorm) assume BERT's positions
INPUTS = ("input_ids", "attention_mask")
CACHE_ENV = "QPR_PYSERINI_CACHE"
Runner = Callable[[Batch], torch.Tensor]
log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where exported models live: ``$QPR_PYSERINI_CACHE``, else ``$XDG_CACHE_HOME/qpr_pyserini``, else
    ``~/.cache/qpr_pyserini``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qpr_pyserini"


def check_backend(backend: str, device: torch.device, dtype: str) -> None:
    """Refuse, as an InputError on ``--backend``, what ``backend`` cannot run: an unknown name, a missing
    extra, a device other than the CPU, weights other than float32."""
    if backend not in BACKENDS:
        raise InputError("--backend", f"{backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return
    missing = [module for module in EXTRAS[backend] if importlib.util.find_spec(module) is None]
    if missing:
        extra = backend.split("-")[0]
        raise InputError(
            "--backend", f"{backend} needs {' and '.join(missing)}: pip install 'qpr_pyserini[{extra}]'"
        )
    if device.type != "cpu":
        raise InputError("--backend", f"{backend} runs on the CPU; use --device cpu (or --backend torch)")
    if dtype != "float32":
        raise InputError(
            "--backend",
            f"{backend} exports float32 weights, but the encoder loads {dtype}: set its dtype to float32",
        )


def make_runner(backend: str, onnx_file: Path, backbone_config: PretrainedConfig) -> Runner:
    """A runner of the exported backbone ``onnx_file`` on ``backend`` (not ``torch``), with torch's thread count:
    fused first for ``onnx``, quantised for ``onnx-int8``, OpenVINO at the backend's precision."""
    if backend == "onnx":
        onnx_file = fused_model(onnx_file, backbone_config)
    elif backend == "onnx-int8":
        onnx_file = quantized_model(onnx_file)
    threads = torch.get_num_threads()
    if backend in OPENVINO_PRECISION:
        return OpenVinoRunner(onnx_file, threads, OPENVINO_PRECISION[backend])
    return OrtRunner(onnx_file, threads)


# ----- export and cache ----------------------------------------------------------------------------------
def _exporter_settings() -> dict[str, object]:
    """Everything besides the weights that decides the exported graph."""
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "opset": OPSET,
        "attention": EXPORT_ATTENTION,
    }


def loaded_weights_key(backbone: torch.nn.Module) -> str:
    """The export key of a backbone in memory: its weights, model class and configuration, the exporter."""
    digest = hashlib.sha256()
    settings = {
        "class": type(backbone).__qualname__,
        "config": backbone.config.to_dict(),
        **_exporter_settings(),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def model_folder_key(folder: Path) -> str | None:
    """The export key of the model ``AutoModel.from_pretrained(folder)`` loads, from the folder's files alone:
    its configuration and weight files (any format) and the exporter; None for a folder without weight files.

    Only for a load straight from the folder (no LoRA adapter applied on top, weights untouched since).
    """
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not any(p.suffix != ".json" for p in files):
        return None
    digest = hashlib.sha256(json.dumps({"folder": True, **_exporter_settings()}, sort_keys=True).encode())
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


def export_path(key: str) -> Path:
    """Where the export named ``key`` lives (whether or not it exists yet)."""
    return cache_root() / "onnx" / key / "model.onnx"


def export_backbone(backbone: torch.nn.Module, sample: Batch, path: Path, name: str) -> Path:
    """Export ``backbone`` to the ONNX file ``path`` (written whole or not at all), traced on ``sample``: a padded
    batch, so that the attention-mask path is part of the graph (a mask of all ones lets some models skip it).
    ``name`` names the model in an error. Returns ``path``."""
    with _atomic_folder(path.parent) as tmp:
        _export(backbone, sample, tmp / path.name, name)
    return path


def fused_model(onnx_file: Path, config: PretrainedConfig) -> Path:
    """For BERT models, ONNX Runtime's transformer optimizer applied to ``onnx_file`` (attention, embedding,
    layer-norm and GELU fusions), cached beside it; other models as exported."""
    if config.model_type not in FUSED_MODEL_TYPES:
        return onnx_file
    target = onnx_file.with_name("model-fused.onnx")
    if not target.is_file():
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(
            str(onnx_file),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
        with tempfile.TemporaryDirectory(dir=onnx_file.parent) as tmp:
            staged = Path(tmp) / target.name
            fused.save_model_to_file(str(staged))
            staged.replace(target)
    return target


def quantized_model(onnx_file: Path) -> Path:
    """A dynamically quantised (int8 weights, per channel) copy of ``onnx_file``, cached beside it."""
    target = onnx_file.with_name("model-int8.onnx")
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(dir=onnx_file.parent) as tmp:
            staged = Path(tmp) / target.name
            quantize_dynamic(onnx_file, staged, weight_type=QuantType.QInt8, per_channel=True)
            staged.replace(target)
    return target


class _BackboneGraph(torch.nn.Module):
    """The backbone as the exported graph sees it: two inputs, one output."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _export(backbone: torch.nn.Module, sample: Batch, path: Path, name: str) -> None:
    dynamic = {0: "batch", 1: "tokens"}
    attention = backbone.config._attn_implementation
    try:
        backbone.set_attn_implementation(EXPORT_ATTENTION)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python branches fixed at trace time
            torch.onnx.export(
                _BackboneGraph(backbone).eval(),
                (sample.input_ids, sample.attention_mask),
                str(path),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "last_hidden_state": dynamic},
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as err:  # the exporter raises many types; the user's remedy is the same
        raise InputError(
            "--backend", f"cannot export {name} to ONNX ({type(err).__name__}: {err}); use --backend torch"
        ) from err
    finally:
        backbone.set_attn_implementation(attention)


@contextmanager
def _atomic_folder(folder: Path) -> Iterator[Path]:
    """Build a folder under a temporary name beside it and move it into place when complete."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        yield tmp
        if not folder.exists():  # another process may have won the race: then keep its copy
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----- runners ---------------------------------------------------------------------------------------------
def _feed(batch: Batch) -> dict[str, np.ndarray]:
    return {"input_ids": batch.input_ids.numpy(), "attention_mask": batch.attention_mask.numpy()}


class OrtRunner:
    """An ONNX Runtime session over an exported backbone: Batch -> last hidden states [B, T, d]."""

    def __init__(self, onnx_file: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: Batch) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, _feed(batch))[0])


class OpenVinoRunner:
    """An OpenVINO compiled model over an exported backbone: Batch -> last hidden states [B, T, d].

    ``precision`` is OpenVINO's inference precision: ``f32`` (pinned, since OpenVINO's CPU default is bf16
    wherever the CPU has bf16 units) or ``bf16`` (where the CPU lacks them OpenVINO runs f32; a warning says so).
    """

    def __init__(self, onnx_file: Path, threads: int, precision: str = "f32") -> None:
        import openvino as ov

        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            log.warning("this CPU has no bf16 units: OpenVINO runs openvino-bf16 in f32")
        settings = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "CACHE_DIR": str(onnx_file.parent / "openvino"),  # compiled blobs: later loads skip compiling
        }
        compiled = core.compile_model(str(onnx_file), "CPU", settings)
        self.request = compiled.create_infer_request()

    def __call__(self, batch: Batch) -> torch.Tensor:
        return torch.from_numpy(self.request.infer(_feed(batch))[0])
