"""/v1/models bodies and the usage object, against OpenAI's schemas and SDK types."""

from openai.types import Model

from compat.models import model_card, model_list
from compat.usage import usage
from tests.openai_schema import validate


def test_model_list_matches_the_schema():
    body = model_list([model_card("smollm2", 1700000000), model_card("other", 1, owned_by="me")])
    validate(body, "ListModelsResponse", strict=True)
    assert body == {
        "object": "list",
        "data": [
            {"id": "smollm2", "object": "model", "created": 1700000000, "owned_by": "cortexstream"},
            {"id": "other", "object": "model", "created": 1, "owned_by": "me"},
        ],
    }


def test_model_card_parses_in_the_sdk():
    assert Model.model_validate(model_card("smollm2", 5)).id == "smollm2"


def test_max_model_len_is_the_only_extension_and_optional():
    card = model_card("m", 1, max_model_len=2048)
    assert card["max_model_len"] == 2048
    validate(card, "Model")
    assert "max_model_len" not in model_card("m", 1)


def test_usage_totals():
    body = usage(12, 30)
    validate(body, "CompletionUsage", strict=True)
    assert body == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}


def test_usage_reports_prefix_cache_hits():
    body = usage(12, 30, cached_tokens=8)
    validate(body, "CompletionUsage", strict=True)
    assert body["prompt_tokens_details"] == {"cached_tokens": 8}
