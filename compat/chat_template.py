"""Hugging Face chat templates, rendered the way transformers' apply_chat_template renders them.

Templates come from model files, so they are untrusted code: they run in jinja2's immutable sandbox. The
environment matches transformers': trim_blocks, lstrip_blocks, loop controls, a `{% generation %}` block (here
it only renders its body), the `tojson` filter without HTML escaping, and the globals `raise_exception`,
`strftime_now`, `dict` and `namespace`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from compat import errors

# ChatML, for tokenizers that ship no template.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{{ message['content'] if message['content'] is string else '' }}"
    "{{ '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

RESERVED_VARIABLES = frozenset(
    {"messages", "tools", "documents", "add_generation_prompt", "continue_final_message"}
)
_CONTINUE_TAG = "<<continue-final-message>> "


class ChatTemplate:
    """A compiled chat template and the tokenizer's special tokens (bos_token, eos_token, ...) it may read."""

    def __init__(self, source: str | None = None, special_tokens: Mapping[str, str] | None = None):
        self.source = DEFAULT_CHAT_TEMPLATE if source is None else source
        self.special_tokens = dict(special_tokens or {})
        try:
            self._template = _compile(self.source)
        except jinja2.TemplateSyntaxError as e:
            raise ValueError(f"invalid chat template: {e}") from e

    def render(
        self,
        messages: Sequence[Mapping],
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: Sequence[Mapping] | None = None,
        template_kwargs: Mapping[str, object] | None = None,
    ) -> str:
        """The prompt text. Template failures (raise_exception, a message shape it cannot handle) are the
        request's fault and raise OpenAIError 400; `template_kwargs` are extra variables and win over the
        special tokens, as in transformers."""
        template_kwargs = dict(template_kwargs or {})
        clash = RESERVED_VARIABLES.intersection(template_kwargs)
        if clash:
            raise errors.invalid_value(
                "chat_template_kwargs", f"'chat_template_kwargs' cannot set {', '.join(sorted(clash))}."
            )
        cleaned = [_without_none(m) for m in messages]
        variables = {**self.special_tokens, **template_kwargs}
        variables.update(tools=None if tools is None else list(tools), documents=None)
        variables["add_generation_prompt"] = add_generation_prompt
        if continue_final_message:
            return self._render_continuing(cleaned, variables)
        return self._render(cleaned, variables)

    def _render(self, messages: list[dict], variables: dict) -> str:
        try:
            return self._template.render(messages=messages, **variables)
        except jinja2.TemplateError as e:
            raise errors.invalid_request(f"Chat template error: {e}", "messages") from e
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise errors.invalid_request(f"Chat template error: {type(e).__name__}: {e}", "messages") from e

    def _render_continuing(self, messages: list[dict], variables: dict) -> str:
        """Render, then cut the text right after the final message's content, so the model continues it."""
        final = messages[-1] if messages else {}
        if not isinstance(final.get("content"), str):
            raise errors.invalid_request(
                "continue_final_message is set but the final message has no content.", "messages"
            )
        tagged = messages[:-1] + [{**final, "content": final["content"] + _CONTINUE_TAG}]
        rendered = self._render(tagged, variables)
        end = rendered.rfind(_CONTINUE_TAG.strip())
        if end < 0:
            raise errors.invalid_request(
                "continue_final_message is set but the chat template does not render the final message.",
                "messages",
            )
        if rendered.startswith(_CONTINUE_TAG, end):
            return rendered[:end]
        return rendered[
            :end
        ].rstrip()  # the template trimmed the content, and with it our tag's trailing space


def _without_none(message: Mapping) -> dict:
    # Templates test for a missing key far more often than for none (transformers drops None values too).
    return {key: value for key, value in message.items() if value is not None}


@functools.lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env.from_string(source)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # jinja2's own tojson escapes <, >, & and ' for HTML; templates expect plain json.dumps.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise_exception(message: str):
    raise jinja2.TemplateError(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _TemplateDict:
    """`dict(...)` for templates, without handing them the dict type itself."""

    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """jinja2's namespace, refusing underscore names that could reach Python internals."""

    def __init__(*args, **kwargs):
        self, attrs = args[0], dict(*args[1:], **kwargs)
        for name in attrs:
            _TemplateNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _TemplateNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} may not start with '_'")


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks; render its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()
