"""Text generators: a prompt in, text out (HyDE writes its hypothetical passage with one).

A generator is a plugin (entry-point group ``ragstate.generators``) named by
``generators.<name>.provider``. The built-in ``openai`` adapter speaks the OpenAI HTTP
API that most servers offer (vLLM, llama.cpp's server, Ollama, LM Studio, OpenAI
itself): ``POST {url}/chat/completions`` (``api: chat``) or ``POST {url}/completions``
(``api: completions``), JSON in and out.

The API key is read when a request is made, from the environment variable
``api_key_env`` names or from the first line of ``api_key_file``; it is registered with
``redact`` so no message, log or record ever shows it. No key: no ``Authorization``
header (a local server usually needs none).

========================  ======================================  =======================
what went wrong           error                                   trying again may help
========================  ======================================  =======================
no such variable / file   ``GeneratorConfigError``                no
HTTP 4xx (not 408, 429)   ``GeneratorConfigError``                no
reply not in the format   ``GeneratorConfigError``                no
refused, timeout, 408,    ``GeneratorUnavailable``                yes
429, 5xx
========================  ======================================  =======================
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from ragstate.errors import GeneratorConfigError, GeneratorUnavailable
from ragstate.plugins import load_plugin
from ragstate.redact import api_key, redact
from ragstate.spec.model import GeneratorSpec

#: characters of a server's error body quoted in a message
QUOTED = 300


class Generator(Protocol):
    """What HyDE needs from a text generator."""

    def identity(self) -> dict[str, Any]:
        """JSON-able identity for messages and results (provider, model, endpoint)."""
        ...

    def generate(self, prompt: str, *, max_tokens: int, temperature: float) -> str:
        """The text the model writes for ``prompt``."""
        ...


def make_generator(name: str, spec: GeneratorSpec) -> Generator:
    """The generator ``generators.<name>`` of the spec.

    Raises:
        PluginError: no such provider.
    """
    factory = load_plugin("ragstate.generators", spec.provider, BUILTIN, field=f"generators.{name}.provider")
    return factory(spec, name=name)


class OpenAICompatible:
    """An OpenAI-compatible HTTP endpoint (chat or plain completions), over the standard library."""

    def __init__(self, spec: GeneratorSpec, *, name: str = "default"):
        self.spec = spec
        self.field = f"generators.{name}"

    def identity(self) -> dict[str, Any]:
        return {"provider": "openai", "url": self.spec.url, "model": self.spec.model, "api": self.spec.api}

    def api_key(self) -> str | None:
        """The key from the environment or its file, registered as a secret; None when none is configured."""
        try:
            return api_key(self.field, self.spec.api_key_env, self.spec.api_key_file)
        except ValueError as exc:
            raise GeneratorConfigError(str(exc)) from None

    def generate(self, prompt: str, *, max_tokens: int, temperature: float) -> str:
        spec = self.spec
        body: dict[str, Any] = {"model": spec.model, "max_tokens": max_tokens, "temperature": temperature}
        if spec.api == "chat":
            endpoint = spec.url + "/chat/completions"
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            endpoint = spec.url + "/completions"
            body["prompt"] = prompt
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.api_key()
        if key:
            headers["Authorization"] = "Bearer " + key
        request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
        where = f"{self.field} ({endpoint})"
        try:
            with urllib.request.urlopen(request, timeout=spec.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = redact(exc.read(QUOTED).decode("utf-8", "replace").strip())
            message = f"{where}: HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
            if exc.code in (408, 429) or exc.code >= 500:
                raise GeneratorUnavailable(message) from None
            raise GeneratorConfigError(message) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GeneratorUnavailable(f"{where}: cannot reach the server ({redact(str(reason))})") from None
        return self._text(raw, where)

    def _text(self, raw: bytes, where: str) -> str:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.spec.api == "chat" else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError):
            shown = redact(raw[:QUOTED].decode("utf-8", "replace"))
            raise GeneratorConfigError(
                f"{where}: the reply is not an OpenAI {self.spec.api} completion: {shown!r}"
            ) from None
        if not isinstance(text, str) or not text.strip():
            raise GeneratorConfigError(f"{where}: the generator returned no text")
        return text.strip()


BUILTIN: dict[str, Any] = {"openai": OpenAICompatible}
