"""Index folders: reading damaged ones, concurrent and killed writers, and the merge | info CLI."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index import __main__ as index_cli
from qpr_pyserini.index.merge import merge_indexes
from qpr_pyserini.index.record import INDEX_RECORD
from qpr_pyserini.index.store import WRITER_FILE, IndexWriter, load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.presets import resolve_encoder

CONFIG = EncoderConfig(model="some/model", name="toy")
DIM = 4


def write_index(
    path: Path, docids: list[str], *, encoder: EncoderConfig | None = CONFIG, **extra: object
) -> Path:
    """An index of ``docids`` with vectors [row, row, ...], written without a model."""
    with IndexWriter(path, DIM, encoder, extra=extra or None) as writer:
        rows = np.arange(len(docids), dtype=np.float32)[:, None]
        writer.add(docids, np.repeat(rows, DIM, axis=1))
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---------------------------------------------------------------- damaged folders


def test_a_truncated_index_file_is_an_input_error(tmp_path: Path) -> None:
    folder = write_index(tmp_path / "idx", ["a", "b", "c"])
    data = (folder / "index").read_bytes()
    (folder / "index").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"^{folder / 'index'}: .*faiss index"):
        load_index(folder)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{\n  "dimension": 4,\n  "encoder": \n}\n', [":4: ", "not valid JSON"]),
        ("[1, 2]\n", ["a JSON object"]),
        ('{"dimension": 4, "documents": 1}\n', ["'encoder'"]),
        ('{"encoder": {"model": "m", "pooling": "max"}}\n', ["'encoder'", "pooling"]),
        ('{"encoder": "minilm"}\n', ["'encoder'", "an object"]),
        ('{"encoder": null, "documents": "1"}\n', ["'documents'"]),
    ],
)
def test_a_malformed_record_names_its_file(tmp_path: Path, text: str, words: list[str]) -> None:
    folder = write_index(tmp_path / "idx", ["a"])
    (folder / INDEX_RECORD).write_text(text)
    for read in (load_index, resolve_encoder):
        with pytest.raises(InputError) as excinfo:
            read(str(folder))
        message = str(excinfo.value)
        assert message.startswith(f"{folder / INDEX_RECORD}"), message
        assert all(word in message for word in words), message


@pytest.mark.parametrize(("field", "value"), [("dimension", 8), ("documents", 3)])
def test_a_record_of_another_index_is_refused(tmp_path: Path, field: str, value: int) -> None:
    folder = write_index(tmp_path / "idx", ["a"])
    record = json.loads((folder / INDEX_RECORD).read_text())
    (folder / INDEX_RECORD).write_text(json.dumps({**record, field: value}))
    with pytest.raises(InputError, match=rf"^{folder / INDEX_RECORD}: records {field} {value}"):
        load_index(folder)


def test_a_record_without_an_encoder_value_is_read(tmp_path: Path) -> None:
    folder = write_index(tmp_path / "idx", ["a"], encoder=None)
    assert load_index(folder).encoder is None
    with pytest.raises(InputError, match="records no encoder"):
        resolve_encoder(str(folder))


def test_a_foreign_index_without_a_record_loads(tmp_path: Path) -> None:
    folder = write_index(tmp_path / "idx", ["a", "b"])
    (folder / INDEX_RECORD).unlink()
    loaded = load_index(folder)
    assert (loaded.record, loaded.encoder, loaded.docids) == (None, None, ["a", "b"])


# ---------------------------------------------------------------- concurrent and killed writers


def test_the_later_of_two_writers_fails_and_leaves_the_first_result(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with pytest.raises(InputError, match="another run finished writing this index meanwhile"):
        with IndexWriter(target, DIM, CONFIG) as writer:
            writer.add(["late"], np.ones((1, DIM), dtype=np.float32))
            write_index(target, ["first"])  # another run finishes while this one is still encoding
    assert load_index(target).docids == ["first"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_an_empty_target_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    assert load_index(write_index(tmp_path / "idx", ["a"])).docids == ["a"]


def test_overwrite_replaces_a_finished_index(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", ["old"])
    with IndexWriter(target, DIM, CONFIG, overwrite=True) as writer:
        writer.add(["new"], np.ones((1, DIM), dtype=np.float32))
    assert load_index(target).docids == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_partial_folders_of_dead_writers_are_cleaned(tmp_path: Path) -> None:
    dead = tmp_path / ".idx.partial-dead"
    dead.mkdir()
    (dead / WRITER_FILE).write_text("12345@elsewhere\n")  # a writer record nobody holds a lock on
    (dead / "docid").write_text("x\n")
    unknown = tmp_path / ".idx.partial-unknown"  # no writer record: it may be a writer starting up
    unknown.mkdir()
    other = tmp_path / ".other.partial-dead"  # another index's: not ours to judge
    other.mkdir()
    (other / WRITER_FILE).write_text("1@host\n")
    write_index(tmp_path / "idx", ["a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".idx.partial-unknown",
        ".other.partial-dead",
        "idx",
    ]


def test_a_killed_writers_folder_is_removed_by_the_next_writer(tmp_path: Path) -> None:
    script = (
        "import os, sys, numpy as np\n"
        "from qpr_pyserini.index import IndexWriter\n"
        "with IndexWriter(sys.argv[1], 4, None) as writer:\n"
        "    writer.add(['a'], np.ones((1, 4), dtype=np.float32))\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "idx")], check=False)
    assert killed.returncode == -9
    (partial,) = tmp_path.glob(".idx.partial-*")
    write_index(tmp_path / "idx", ["b"])
    assert not partial.exists() and load_index(tmp_path / "idx").docids == ["b"]


def test_partial_folders_of_live_writers_are_kept(tmp_path: Path) -> None:
    live = tmp_path / ".idx.partial-live"
    live.mkdir()
    with open(live / WRITER_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running writer holds it
        write_index(tmp_path / "idx", ["a"])
        assert live.is_dir() and (live / WRITER_FILE).is_file()


def test_a_running_writer_is_recognised_and_leaves_no_record_behind(tmp_path: Path) -> None:
    with IndexWriter(tmp_path / "idx", DIM, CONFIG, overwrite=True) as writer:
        writer.add(["a"], np.ones((1, DIM), dtype=np.float32))
        (partial,) = tmp_path.glob(".idx.partial-*")
        assert (partial / WRITER_FILE).is_file()
        write_index(tmp_path / "idx", ["b"])  # a second writer of the same target starts and finishes
        assert partial.is_dir()
    assert load_index(tmp_path / "idx").docids == ["a"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["docid", "index", INDEX_RECORD]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


# ---------------------------------------------------------------- merge


def test_merge_edge_cases(tmp_path: Path) -> None:
    a = write_index(tmp_path / "a", ["a1", "a2"], corpus="c.jsonl", shard={"id": 0, "num": 2})
    b = write_index(tmp_path / "b", ["b1"], corpus="c.jsonl", shard={"id": 1, "num": 2})
    with pytest.raises(InputError, match="^--shards: "):
        merge_indexes([], tmp_path / "m")
    with pytest.raises(InputError, match=rf"^{b}: is shard 1 of 2, as {b} is \(given twice\)"):
        merge_indexes([a, b, b], tmp_path / "m")
    copy = write_index(tmp_path / "copy", ["b1"])
    with pytest.raises(InputError, match=rf"^{copy}: duplicate doc id 'b1'"):
        merge_indexes([write_index(tmp_path / "plain", ["b1"]), copy], tmp_path / "m")
    wide = tmp_path / "wide"
    with IndexWriter(wide, DIM + 1, CONFIG) as writer:
        writer.add(["w"], np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(InputError, match=rf"^{wide}: dimension 5"):
        merge_indexes([a, b, wide], tmp_path / "m")
    foreign = write_index(tmp_path / "foreign", ["f"])
    (foreign / INDEX_RECORD).unlink()
    cls = write_index(tmp_path / "cls", ["c"], encoder=replace(CONFIG, pooling="cls"))
    with pytest.raises(
        InputError, match=rf"^{foreign}: {foreign} has no qpr_index.json \(its encoder is unknown\)"
    ):
        merge_indexes([a, b, foreign], tmp_path / "m")
    with pytest.raises(InputError, match=rf"^{cls}: was encoded with a different encoder"):
        merge_indexes([a, b, cls], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    # shards are concatenated in the order given
    merged = load_index(merge_indexes([b, a], tmp_path / "m"))
    assert merged.docids == ["b1", "a1", "a2"]
    np.testing.assert_array_equal(merged.vectors()[:, 0], [0, 0, 1])
    assert (merged.record["corpus"], merged.record["merged_from"], merged.encoder) == ("c.jsonl", 2, CONFIG)
    assert "shard" not in merged.record
    # an output that is one of the shards can be replaced by the merge
    assert load_index(merge_indexes([a, b], a, overwrite=True)).docids == ["a1", "a2", "b1"]


def test_merge_refuses_a_missing_shard_unless_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_index(tmp_path / "a", ["a1"], shard={"id": 0, "num": 2})
    assert index_cli.main(["merge", "--shards", str(a), "--index", str(tmp_path / "m")]) == 2
    assert "shard 1 of 2 is missing" in one_line_error(capsys) and not (tmp_path / "m").exists()
    argv = ["merge", "--shards", str(a), "--index", str(tmp_path / "m"), "--allow-partial"]
    assert index_cli.main(argv) == 0
    assert load_index(tmp_path / "m").record["partial"] == {"shards": [0], "num": 2}
    mixed = write_index(tmp_path / "mixed", ["x1"], shard={"id": 1, "num": 3})
    with pytest.raises(InputError, match="not shards of one split"):
        merge_indexes([a, mixed], tmp_path / "m2", allow_partial=True)


def test_a_malformed_shard_field_names_the_record(tmp_path: Path) -> None:
    for bad in ({"id": 2, "num": 2}, {"id": "0"}, [0, 2]):
        index = write_index(tmp_path / f"i{len(str(bad))}", ["a"], shard=bad)
        with pytest.raises(InputError, match=rf"^{index}/qpr_index.json: field 'shard' must be"):
            load_index(index)


def test_merge_of_empty_indexes_is_an_error(tmp_path: Path) -> None:
    empty = [tmp_path / "e1", tmp_path / "e2"]
    for path in empty:
        with IndexWriter(path, DIM, CONFIG):
            pass
    with pytest.raises(InputError, match="^--shards: no documents"):
        merge_indexes(empty, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_merge_of_foreign_indexes_records_no_encoder(tmp_path: Path) -> None:
    shards = [write_index(tmp_path / n, [n], encoder=None) for n in ("x", "y")]
    for shard in shards:
        (shard / INDEX_RECORD).unlink()
    merged = load_index(merge_indexes(shards, tmp_path / "m"))
    assert merged.docids == ["x", "y"] and merged.encoder is None


def test_merge_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_index(tmp_path / "a", ["a1", "a2"], corpus="c.jsonl", shard={"id": 0, "num": 2})
    b = write_index(tmp_path / "b", ["b1"], corpus="c.jsonl", shard={"id": 1, "num": 2})
    out = tmp_path / "m"
    argv = ["merge", "--shards", str(a), str(b), "--index", str(out)]
    assert index_cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == f"merged 2 shards into {out} (3 vectors)"
    assert index_cli.main(argv) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert index_cli.main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert index_cli.main(["merge", "--shards", str(a), str(tmp_path / "absent"), "--index", str(out)]) == 2
    assert f"{tmp_path / 'absent'}: " in one_line_error(capsys)
    with pytest.raises(SystemExit) as exit_info:
        index_cli.main(["merge", "--index", str(out)])
    assert exit_info.value.code == 2


def test_info_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours = write_index(tmp_path / "ours", ["a", "b"], corpus="c.jsonl")
    assert index_cli.main(["info", str(ours)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["documents"], shown["dimension"], shown["corpus"]) == (2, DIM, "c.jsonl")
    assert shown["encoder"] == CONFIG.to_dict()
    (ours / INDEX_RECORD).unlink()
    assert index_cli.main(["info", str(ours)]) == 0
    assert json.loads(capsys.readouterr().out) == {"dimension": DIM, "documents": 2}
    assert index_cli.main(["info", str(tmp_path / "absent")]) == 2
    assert "not a Pyserini FAISS index folder" in one_line_error(capsys)
    (ours / INDEX_RECORD).write_text("{")
    assert index_cli.main(["info", str(ours)]) == 2
    assert f"{ours / INDEX_RECORD}:1: " in one_line_error(capsys)


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    ours = write_index(tmp_path / "ours", ["a"])
    command = [sys.executable, "-m", "qpr_pyserini.index", "info"]
    shown = subprocess.run([*command, str(ours)], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and json.loads(shown.stdout)["documents"] == 1
    (ours / "index").write_bytes(b"")
    failed = subprocess.run([*command, str(ours)], capture_output=True, text=True, check=False)
    assert failed.returncode == 2 and failed.stdout == ""
    assert (
        failed.stderr.strip()
        == f"error: {ours / 'index'}: cannot read the faiss index (a truncated or foreign file)"
    )


def test_a_finished_index_folder_has_ordinary_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_index(tmp_path / "idx", ["a"])
    finally:
        os.umask(old)
    assert (tmp_path / "idx").stat().st_mode & 0o777 == 0o755


def test_a_memory_mapped_index_holds_the_same_vectors(tmp_path: Path) -> None:
    write_index(tmp_path / "idx", ["a", "b", "c"])
    read, mapped = load_index(tmp_path / "idx"), load_index(tmp_path / "idx", mmap=True)
    assert mapped.docids == read.docids
    np.testing.assert_array_equal(mapped.vectors(), read.vectors())
