"""Atomic, deterministic writers shared by every stage.

Every output goes to a temporary file in the destination folder and is renamed into
place, so a killed job never leaves a truncated file that a rerun would trust.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# The folder every output must stay inside; the CLI sets it (to ./results unless the caller
# chose another), functions called directly from Python write where they are told.
RESULTS_ENV = "BGSHIFT_RESULTS"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# tempfile creates 0600 files and 0700 folders; outputs get the modes any other tool gives them.
FILE_MODE = 0o666 & ~_read_umask()
DIR_MODE = 0o777 & ~_read_umask()


class OutsideResults(ValueError):
    """An output path that resolves outside the results folder (a name with '../', a symlink)."""


def inside_results(path: str | os.PathLike) -> Path:
    """`path`, after checking that it resolves inside the results folder (when one is set):
    the last line of defence against user-chosen names that would write or delete elsewhere."""
    path = Path(path)
    root = os.environ.get(RESULTS_ENV)
    if root:
        root_path, resolved = Path(root).resolve(), path.resolve()
        if not resolved.is_relative_to(root_path):
            raise OutsideResults(f"output {path} resolves to {resolved}, outside the results folder {root_path}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = inside_results(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path, suffix: str = "") -> None:
    """Delete what a killed writer of `path` left behind (`.{name}.XXXXXXXX{suffix}`, tempfile's
    pattern). Safe because one job at a time owns an output path (Snakemake's guarantee)."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]{8}" + re.escape(suffix))
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if pattern.fullmatch(leftover.name):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (an older
    folder of that name is removed only then, and only inside the results folder)."""
    path = inside_results(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def link_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """`path` as a second name of the finished file `source` (a hard link: a 76 MB checkpoint
    is not stored twice), or a copy where the filesystem has no hard links."""
    with atomic_path(path) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_table(table, stem: str | os.PathLike, formats: tuple[str, ...] = ("csv", "md"), caption: str | None = None) -> None:
    """A pandas table as stem.csv / .md / .tex / .html (those named in `formats`), under its
    caption where the format has one: the one table writer of the stages and the report."""
    stem = Path(stem)
    text = {"csv": lambda: table.to_csv(index=False),
            "md": lambda: (f"{caption}\n\n" if caption else "") + table.to_markdown(index=False) + "\n",
            "tex": lambda: _latex(table, caption or ""),
            "html": lambda: (f"<h3>{caption}</h3>\n" if caption else "") + table.to_html(border=0, classes="metrics", index=False) + "\n"}
    for kind in formats:
        write_text(stem.with_suffix(f".{kind}"), text[kind]())


def _latex(table, caption: str) -> str:
    latex = (table.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
             .set_caption(caption.replace("±", "$\\pm$")).to_latex(hrules=True))
    return latex.replace(" ± ", " $\\pm$ ") + "\n"


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Write JSON with sorted keys so equal content gives equal bytes."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


def write_torch(path: str | os.PathLike, obj) -> None:
    """torch.save, byte-reproducibly: the zip archive inside a .pt file is named after the
    file it is saved to, so saving to a random temporary name would give different bytes."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def parquet_options(schema: pa.Schema, binary_columns: tuple[str, ...] = (), codec: str | None = "zstd") -> dict:
    """Writer options: columns holding already-compressed blobs (JPEG bytes) get no
    compression, no dictionary encoding and no min/max statistics (all three only cost
    time on such data: the statistics alone were 1.8 ms an image in the variant stage);
    the rest are compressed with `codec`. `codec=None` writes every column plain: the
    variant stage's intermediates (34 files of a few dozen rows, read back whole), where
    the three cost 0.24 ms an image at 640x480 to save 0.5% of the bytes (docs/benchmarks.md)."""
    plain = set(binary_columns)
    leaf_paths = [".".join(p) for p in _leaf_paths(schema)]
    structured = [p for p in leaf_paths if p.split(".")[0] not in plain] if codec else []
    return {
        "compression": {p: (codec if p in structured else "none") for p in leaf_paths},
        "use_dictionary": structured,
        "write_statistics": structured,
        "store_schema": True,
    }


def write_parquet(path: str | os.PathLike, table: pa.Table, binary_columns: tuple[str, ...] = ()) -> None:
    """Write a Parquet file atomically (see parquet_options)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema, binary_columns))


BINARY_OFFSET_LIMIT = np.iinfo(np.int32).max  # bytes one Arrow binary array can hold


def rows_table(rows: list[dict], schema: pa.Schema, binary_columns: tuple[str, ...] = ()) -> pa.Table:
    """`pa.Table.from_pylist`, but image columns ({bytes, path} structs) are built from one
    joined buffer: Arrow's per-object conversion of JPEG bytes cost ~1.2 ms per 32 images
    at 640x480, a third of the variant writer (docs/benchmarks.md)."""
    blobs = {name: [row[name]["bytes"] for row in rows] for name in binary_columns}
    if any(sum(map(len, b)) > BINARY_OFFSET_LIMIT for b in blobs.values()):
        return pa.Table.from_pylist(rows, schema=schema)  # past binary's 32-bit offsets Arrow splits the column itself
    columns = []
    for field in schema:
        if field.name not in blobs:
            columns.append(pa.array([row[field.name] for row in rows], type=field.type))
            continue
        offsets = np.zeros(len(rows) + 1, np.int32)
        np.cumsum([len(b) for b in blobs[field.name]], out=offsets[1:])
        data = pa.Array.from_buffers(pa.binary(), len(rows), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(blobs[field.name]))])
        paths = pa.array([row[field.name]["path"] for row in rows], type=pa.string())
        columns.append(pa.StructArray.from_arrays([data, paths], fields=list(field.type)))
    return pa.Table.from_arrays(columns, schema=schema)


class PartWriter:
    """Rows into numbered Parquet parts of `part_rows` rows each (part-00000.parquet, ...);
    without rows, one empty part, so that readers still find the split and its schema."""

    def __init__(self, folder: Path, schema: pa.Schema, part_rows: int, binary_columns: tuple[str, ...] = ("image",)):
        self.folder, self.schema, self.part_rows, self.binary_columns = Path(folder), schema, part_rows, binary_columns
        self.options = parquet_options(schema, binary_columns)
        self.buffer: list[dict] = []
        self.parts = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) == self.part_rows:
            self._flush()

    def close(self) -> None:
        if self.buffer or self.parts == 0:
            self._flush()

    def _flush(self) -> None:
        pq.write_table(rows_table(self.buffer, self.schema, self.binary_columns), self.folder / f"part-{self.parts:05d}.parquet",
                       **self.options)
        self.buffer, self.parts = [], self.parts + 1


def read_categories(path: str | os.PathLike) -> tuple[list[dict], dict[int, int]]:
    """Ingest's categories in class-index order, and category id -> class index."""
    categories = sorted(pq.read_table(path).to_pylist(), key=lambda c: c["index"])
    return categories, {c["category_id"]: c["index"] for c in categories}


def _leaf_paths(schema: pa.Schema) -> list[tuple[str, ...]]:
    """Dotted Parquet column paths (struct fields and list items flattened)."""
    out: list[tuple[str, ...]] = []

    def walk(prefix: tuple[str, ...], typ: pa.DataType) -> None:
        if pa.types.is_struct(typ):
            for field in typ:
                walk(prefix + (field.name,), field.type)
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            walk(prefix + ("list", "element"), typ.value_type)
        else:
            out.append(prefix)

    for field in schema:
        walk((field.name,), field.type)
    return out


def read_parquet(path: str | os.PathLike) -> pa.Table:
    return pq.read_table(path)
