import importlib.util
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (a user's clone has no ../shared)")
    return SHARED_DATA


def embedded_teacher(model: str):
    """The embedded teacher on a packaged model; skips without the [llamacpp] extra or the model's package."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed: pip install -e '.[llamacpp]'")
    from dialpref.teachers.llamacpp import LlamaCppTeacher
    from dialpref.teachers.packaged import MODELS, is_installed

    if not is_installed(MODELS[model]):
        pytest.skip(f"{MODELS[model].distribution} is not installed")
    return LlamaCppTeacher(model, n_ctx=2048)


@pytest.fixture(scope="session")
def smollm2():
    """The embedded teacher on the packaged SmolLM2 model."""
    return embedded_teacher("smollm2-135m")
