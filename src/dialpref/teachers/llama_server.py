"""llama.cpp's OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`) with weight repacking off.

On CPUs with AVX-512 and AMX, llama.cpp repacks weights into "extra buffer" layouts for faster kernels;
with llama-cpp-python 0.3.36 those kernels crashed here (a segmentation fault on the first prompt of more
than one token: SmolLM2-135M Q4_1 on a 2-core Intel Xeon with AMX), so `python -m llama_cpp.server` dies on
its first request. The embedded teacher already loads models without repacking (`no_weight_repacking`,
which also keeps its logits exact); this entry point does the same for the server. It takes every flag of
`python -m llama_cpp.server`:

    python -m dialpref.teachers.llama_server --model "$(dialpref teachers path smollm2-135m)" --port 8080
"""

from __future__ import annotations


def main() -> None:
    import llama_cpp
    from llama_cpp.server.__main__ import main as serve

    from dialpref.teachers.llamacpp import no_weight_repacking

    with no_weight_repacking(llama_cpp):
        serve()


if __name__ == "__main__":  # pragma: no cover
    main()
