"""Grammar-constrained decoding: the mask on its own, the compiler's errors, and generation on SmolLM2
whose output must validate (jsonschema is the independent judge) at temperature 0 and 1."""

import json
import re

import jsonschema
import numpy as np
import pytest

from jax_engine.errors import RequestField, RequestValidationError
from jax_engine.model_runner import sampling_metadata
from jax_engine.request import Request
from jax_engine.sampler import apply_grammar_bitmask, sample
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output import StructuredOutputParams, grammar_bitmask
from jax_engine.structured_output.bitmask import bitmask_width

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "role": {"enum": ["admin", "editor", "viewer"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
CITY = {
    "type": "object",
    "properties": {
        "city": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "coords": {
                    "type": "object",
                    "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                   "lon": {"type": "number", "minimum": -180, "maximum": 180}},
                    "required": ["lat", "lon"],
                    "additionalProperties": False,
                },
            },
            "required": ["name", "coords"],
            "additionalProperties": False,
        },
        "visited": {"type": "boolean"},
    },
    "required": ["city", "visited"],
    "additionalProperties": False,
}
SHOPPING = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {"item": {"enum": ["apple", "bread", "milk", "eggs"]},
                               "quantity": {"type": "integer", "minimum": 1, "maximum": 12}},
                "required": ["item", "quantity"],
                "additionalProperties": False,
            },
        },
        "total": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
    },
    "required": ["items", "total"],
    "additionalProperties": False,
}
SCHEMAS = {"person": PERSON, "city": CITY, "shopping": SHOPPING}
PROMPTS = {
    "person": "Give me a user record for the site admin as JSON.",
    "city": "Describe Paris as JSON: its name, coordinates, and whether I visited it.",
    "shopping": "Write my shopping list as JSON with quantities and the total price.",
}


def chat(engine, text: str) -> list[int]:
    return engine.tokenizer.encode(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")


def generate(engine, requests: dict) -> dict:
    """request id -> (prompt ids, SamplingParams); returns id -> {text, tokens, finish_reason}."""
    for rid, (ids, params) in requests.items():
        engine.add_request(rid, ids, params)
    results = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            key = out.request_id if out.index == 0 else f"{out.request_id}#{out.index}"
            r = results.setdefault(key, {"text": "", "tokens": [], "finish_reason": None})
            r["text"] += out.new_text
            r["tokens"] += out.new_token_ids
            r["finish_reason"] = out.finish_reason or r["finish_reason"]
    return results


def constrained(schema=None, temperature=0.0, max_tokens=96, **kw) -> SamplingParams:
    so = StructuredOutputParams(json=schema) if schema is not None else StructuredOutputParams(**kw)
    return SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=7, structured_output=so)


# ---- the mask ---------------------------------------------------------------------------------


def packed(allowed: np.ndarray) -> np.ndarray:
    """A bool [S, V] mask packed as llguidance writes it: little-endian bits in int32 words."""
    width = bitmask_width(allowed.shape[1])
    bits = np.zeros((allowed.shape[0], width * 32), bool)
    bits[:, :allowed.shape[1]] = allowed
    return np.packbits(bits, axis=1, bitorder="little").view(np.int32)


def test_bitmask_sets_exactly_the_disallowed_logits_to_minus_inf():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 100)).astype(np.float32)
    allowed = rng.random((3, 100)) < 0.3
    out = np.asarray(apply_grammar_bitmask(logits, packed(allowed)))
    np.testing.assert_array_equal(out, np.where(allowed, logits, -np.inf))


def test_sampling_picks_only_allowed_tokens_and_leaves_rows_without_grammar_alone():
    vocab, rng = 64, np.random.default_rng(1)
    logits = rng.normal(size=(4, vocab)).astype(np.float32) * 3
    allowed = np.ones((4, vocab), bool)
    allowed[0] = False
    allowed[0, [5, 9]] = True
    allowed[2] = rng.random(vocab) < 0.1
    allowed[2, 3] = True
    reqs = [(i, Request(str(i), [1], SamplingParams(temperature=t), seed=i)) for i, t in enumerate([0, 0, 1, 1])]
    plain_md, plain_flags = sampling_metadata(reqs, 4, vocab)
    md, flags = sampling_metadata(reqs, 4, vocab, packed(allowed))
    plain = np.asarray(sample(logits, plain_md, plain_flags)[0])
    ids = np.asarray(sample(logits, md, flags)[0])
    assert flags.grammar and not plain_flags.grammar
    assert ids[0] == [5, 9][int(np.argmax(logits[0, [5, 9]]))]
    assert allowed[2, ids[2]]
    assert ids[1] == plain[1] and ids[3] == plain[3]


# ---- compiling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("schema, feature", [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "if": {"required": ["a"]}}, "if"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
    ({"type": "string", "format": "no-such-format"}, "no-such-format"),
    ({"type": "integer", "minimum": 5, "maximum": 3}, "minimum"),
])
def test_unenforceable_schema_is_refused_naming_the_feature(smollm2_engine, schema, feature):
    with pytest.raises(RequestValidationError) as e:
        smollm2_engine.validate([1, 2], constrained(schema))
    assert e.value.field is RequestField.STRUCTURED_OUTPUT
    assert feature in str(e.value)


def test_invalid_regex_and_grammar_are_refused(smollm2_engine):
    for so in (StructuredOutputParams(regex="(?=a)b"), StructuredOutputParams(grammar="start: undefined_rule")):
        with pytest.raises(RequestValidationError):
            smollm2_engine.validate([1, 2], SamplingParams(structured_output=so))


def test_refused_schema_leaves_no_request_behind(smollm2_engine):
    with pytest.raises(RequestValidationError):
        smollm2_engine.add_request("bad", [1, 2], constrained({"type": "nonsense"}))
    assert not smollm2_engine.has_unfinished_requests() and "bad" not in smollm2_engine.output_processor.children


def test_equal_schemas_share_one_compiled_grammar(smollm2_engine):
    manager = smollm2_engine.structured_output
    a = manager.compile(StructuredOutputParams(json={"type": "object", "required": ["x"]}))
    b = manager.compile(StructuredOutputParams(json={"required": ["x"], "type": "object"}))
    assert a is b


def test_choice_mask_allows_exactly_the_tokens_that_start_a_choice(smollm2_engine):
    """Reference: a token may come first iff its bytes are a non-empty prefix of one of the choices."""
    tok, vocab = smollm2_engine.tokenizer, smollm2_engine.model_config.vocab_size
    choices = ["yes", "no", "maybe later"]
    grammar = smollm2_engine.structured_output.grammar(StructuredOutputParams(choice=choices))
    bits = np.unpackbits(grammar_bitmask([(0, grammar)], 1, vocab).view(np.uint8), bitorder="little")[:vocab]
    expected = {i for i in range(vocab) if i not in tok.all_special_ids
                and (b := tok.token_to_bytes(i)) and any(c.encode().startswith(b) for c in choices)}
    assert set(np.flatnonzero(bits).tolist()) == expected


# ---- generation on SmolLM2 -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema_outputs(smollm2_engine):
    requests = {f"{name}@{t}": (chat(smollm2_engine, PROMPTS[name]), constrained(schema, temperature=t))
                for name, schema in SCHEMAS.items() for t in (0.0, 1.0)}
    return generate(smollm2_engine, requests)


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_output_validates_against_the_schema(schema_outputs, name, temperature):
    out = schema_outputs[f"{name}@{temperature}"]
    assert out["finish_reason"] == "stop", out
    jsonschema.validate(json.loads(out["text"]), SCHEMAS[name])


def test_output_ends_when_the_grammar_completes_without_an_end_token(schema_outputs, smollm2_engine):
    """The schemas are closed objects, so the last token closes the object: no EOS is needed or shown."""
    for out in schema_outputs.values():
        assert out["text"].endswith("}")
        assert out["tokens"][-1] not in smollm2_engine.eos_token_ids


def test_json_object_gives_one_valid_object(smollm2_engine):
    prompt = chat(smollm2_engine, "Return a JSON object describing a cat.")
    outs = generate(smollm2_engine, {f"obj@{t}": (prompt, constrained(temperature=t, max_tokens=160,
                                                                        json_object=True))
                                     for t in (0.0, 1.0)})
    for out in outs.values():
        if out["finish_reason"] == "stop":
            assert isinstance(json.loads(out["text"]), dict)
        else:  # cut by max_tokens: still a prefix of an object, never prose
            assert out["finish_reason"] == "length" and out["text"].lstrip().startswith("{")
    assert outs["obj@0.0"]["finish_reason"] == "stop"


def test_regex_and_choice_constraints_hold(smollm2_engine):
    prompt = chat(smollm2_engine, "What is the phone number of the office?")
    outs = generate(smollm2_engine, {
        "regex": (prompt, constrained(regex=r"\(\d{3}\) \d{3}-\d{4}", temperature=1.0)),
        "choice": (chat(smollm2_engine, "Is Paris in France?"),
                   constrained(choice=["yes", "no"], temperature=1.0)),
    })
    assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", outs["regex"]["text"])
    assert outs["choice"]["text"] in ("yes", "no")
    assert all(o["finish_reason"] == "stop" for o in outs.values())


def test_every_sample_of_n_follows_its_own_grammar(smollm2_engine):
    params = constrained(PERSON, temperature=1.0)
    params.n = 3
    outs = generate(smollm2_engine, {"n": (chat(smollm2_engine, PROMPTS["person"]), params)})
    for key in ("n", "n#1", "n#2"):
        jsonschema.validate(json.loads(outs[key]["text"]), PERSON)


def test_unconstrained_request_gets_the_same_tokens_beside_constrained_ones(smollm2_engine, schema_outputs):
    smollm2_engine.block_manager.reset_prefix_cache()
    prompt = chat(smollm2_engine, "Write a haiku about the sea.")
    free = {"greedy": SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True),
            "sampled": SamplingParams(temperature=1.0, top_p=0.9, max_tokens=24, seed=3, ignore_eos=True)}
    alone = generate(smollm2_engine, {k: (prompt, p) for k, p in free.items()})
    mixed = generate(smollm2_engine, {
        **{k: (prompt, p) for k, p in free.items()},
        **{name: (chat(smollm2_engine, PROMPTS[name]), constrained(schema, temperature=1.0))
           for name, schema in SCHEMAS.items()},
    })
    for k in free:
        assert mixed[k]["tokens"] == alone[k]["tokens"]
    for name, schema in SCHEMAS.items():
        jsonschema.validate(json.loads(mixed[name]["text"]), schema)


def test_constrained_greedy_output_survives_preemption(smollm2_engine, schema_outputs):
    """Preemption by recompute keeps the output tokens, and the matcher follows them: same result."""
    engine = smollm2_engine
    engine.add_request("p", chat(engine, PROMPTS["city"]), constrained(CITY))
    text, steps = "", 0
    while engine.has_unfinished_requests():
        outs = engine.step()
        text += "".join(o.new_text for o in outs)
        steps += 1
        if steps in (3, 9):
            engine.scheduler.preempt(engine.output_processor.states["p"].request)
    assert text == schema_outputs["city@0.0"]["text"]


def test_abort_releases_the_matcher(smollm2_engine):
    engine = smollm2_engine
    engine.add_request("a", chat(engine, PROMPTS["person"]), constrained(PERSON))
    req = engine.output_processor.states["a"].request
    engine.step()
    assert req.grammar is not None
    engine.abort_request("a")
    assert req.grammar is None and not engine.has_unfinished_requests()


def test_engine_without_tokenizer_refuses_structured_output(smollm2_engine, monkeypatch):
    monkeypatch.setattr(smollm2_engine, "structured_output", None)  # as built for --load-format dummy
    with pytest.raises(RequestValidationError, match="tokenizer"):
        smollm2_engine.validate([1, 2], constrained(PERSON))
