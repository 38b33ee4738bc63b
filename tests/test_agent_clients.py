"""Agent frameworks that speak the Responses API, run unchanged against the shared server: the OpenAI Agents
SDK's default Agent (its default model class talks /v1/responses) with one function tool, and LangChain's
ChatOpenAI with use_responses_api=True. The model is tiny: these check the protocol round trips, not wisdom."""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import Agent, ModelSettings, Runner, function_tool, set_default_openai_client, set_tracing_disabled
from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
from langchain_core.messages import AIMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.server_fixture import DEFAULT_MODEL_NAME
from tests.test_responses_api import ANSWER, GREEDY_IDS, QUESTION


@pytest.fixture(scope="module")
def default_openai_client(server):
    """What an Agents SDK user does to point it at another server: a default client, no tracing upload."""
    set_tracing_disabled(True)
    set_default_openai_client(openai.AsyncOpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0),
                              use_for_tracing=False)


def test_agents_sdk_default_agent_calls_its_tool_and_answers(default_openai_client):
    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"It is 22 degrees and sunny in {city}."

    # tool_choice="required" so the tiny model calls the tool; the SDK resets it to auto for the next turn.
    settings = ModelSettings(temperature=0, max_tokens=100, tool_choice="required", parallel_tool_calls=False)
    agent = Agent(name="Assistant", instructions="You answer questions about the weather.", tools=[get_weather],
                  model=DEFAULT_MODEL_NAME, model_settings=settings)
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=3))
    assert len(calls) == 1 and calls[0].strip()
    kinds = [type(item) for item in result.new_items]
    assert kinds == [ToolCallItem, ToolCallOutputItem, MessageOutputItem]
    assert result.new_items[1].raw_item["call_id"] == result.new_items[0].raw_item.call_id
    assert isinstance(result.final_output, str) and result.final_output
    assert len(result.raw_responses) == 2


def chat_model(server, max_tokens: int) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.url("/v1"), api_key="unused", model=DEFAULT_MODEL_NAME, temperature=0,
                      max_tokens=max_tokens, max_retries=0, use_responses_api=True)


def test_langchain_responses_api_invoke_and_stream(server):
    model = chat_model(server, 16)
    answer = model.invoke(QUESTION)
    assert isinstance(answer, AIMessage) and answer.text == ANSWER
    assert answer.usage_metadata["output_tokens"] == len(GREEDY_IDS)
    chunks = list(model.stream(QUESTION))
    assert "".join(chunk.text for chunk in chunks) == ANSWER


def test_langchain_tool_call_round_trip(server):
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return "22 degrees"

    model = chat_model(server, 40).bind_tools([get_weather], tool_choice="get_weather", parallel_tool_calls=False)
    question = ("human", "What is the weather in Paris?")
    called = model.invoke([question])
    [call] = called.tool_calls
    assert call["name"] == "get_weather" and set(call["args"]) == {"city"}
    reply = chat_model(server, 16).invoke([question, called, ToolMessage("22 degrees", tool_call_id=call["id"])])
    assert isinstance(reply, AIMessage) and reply.text
