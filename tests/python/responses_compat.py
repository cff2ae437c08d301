"""The official `openai` Python SDK's Responses API against switchboard's `/v1/responses`.

Run by tests/it/sdk_python_responses.rs against a router whose route (`--model`) is backed by
a mock upstream scripted for exactly these calls, in this order: a text answer, a text
stream (read with `stream=True`), the same stream (read with `client.responses.stream`), a
forced `get_weather` call, the answer after the call's output, the call streamed. Each check
prints `ok   NAME (detail)`; the first failure prints `FAIL NAME: why` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any, Callable

import openai

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--text", required=True, help="the text every text answer carries")
    return parser.parse_args(argv)


def run(name: str, check: Callable[[], str | None]) -> None:
    try:
        detail = check()
    except Exception as error:  # any assertion, SDK or transport error fails the check
        print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)
    print(f"ok   {name}" + (f" ({detail})" if detail else ""), flush=True)


def check_usage(usage: Any) -> str:
    assert usage is not None, "no usage"
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens, usage
    assert usage.input_tokens_details.cached_tokens >= 0, usage
    assert usage.output_tokens_details.reasoning_tokens >= 0, usage
    return f"{usage.input_tokens}+{usage.output_tokens}={usage.total_tokens}"


def check_events(events: list[Any]) -> list[str]:
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events))), numbers
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    return types


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30)
    print(f"openai {openai.__version__} against {args.base_url}", flush=True)

    def create() -> str:
        response = client.responses.create(
            model=args.model, instructions="Be brief.", input="Say hello", max_output_tokens=200
        )
        assert response.object == "response" and response.id.startswith("resp_"), response
        assert response.status == "completed", response.status
        assert response.output_text == args.text, response.output_text
        return f"{response.output_text!r}; usage {check_usage(response.usage)}"

    def stream_true() -> str:
        events = list(client.responses.create(model=args.model, input="Say hello", stream=True))
        types = check_events(events)
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == args.text, deltas
        final = events[-1].response
        assert final.output_text == args.text, final.output_text
        return f"{len(types)} events; usage {check_usage(final.usage)}"

    def stream_helper() -> str:
        with client.responses.stream(model=args.model, input="Say hello") as stream:
            events = list(stream)
            final = stream.get_final_response()
        check_events(events)
        assert final.output_text == args.text, final.output_text
        return f"final {final.output_text!r}"

    def function_round_trip() -> str:
        first = client.responses.create(
            model=args.model,
            input=[{"role": "user", "content": "Weather in Paris?"}],
            tools=TOOLS,
            tool_choice={"type": "function", "name": "get_weather"},
        )
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1, first.output
        call = calls[0]
        assert call.name == "get_weather", call
        arguments = json.loads(call.arguments)
        assert arguments.get("city") == "Paris", arguments
        second = client.responses.create(
            model=args.model,
            input=[
                {"role": "user", "content": "Weather in Paris?"},
                *[item.model_dump(exclude_none=True) for item in first.output],
                {
                    "type": "function_call_output",
                    "call_id": call.call_id,
                    "output": json.dumps({"temp": 18}),
                },
            ],
            tools=TOOLS,
        )
        assert second.output_text == args.text, second.output_text
        return f"{call.name}({call.arguments}) -> {second.output_text!r}"

    def function_stream() -> str:
        with client.responses.stream(
            model=args.model, input="Weather in Paris?", tools=TOOLS, tool_choice="required"
        ) as stream:
            events = list(stream)
            final = stream.get_final_response()
        types = check_events(events)
        assert "response.function_call_arguments.delta" in types, types
        calls = [item for item in final.output if item.type == "function_call"]
        assert len(calls) == 1, final.output
        arguments = json.loads(calls[0].arguments)
        assert arguments.get("city") == "Paris", arguments
        return f"{calls[0].name} from {types.count('response.function_call_arguments.delta')} deltas"

    def previous_response() -> str:
        try:
            client.responses.create(model=args.model, input="more", previous_response_id="resp_1")
        except openai.BadRequestError as error:
            assert error.code == "stored_responses_not_supported", error.code
            assert error.param == "previous_response_id", error.param
            return "400"
        raise AssertionError("previous_response_id was accepted")

    run("responses.create", create)
    run("responses.create stream=True", stream_true)
    run("responses.stream get_final_response", stream_helper)
    run("function call round trip", function_round_trip)
    run("function call stream", function_stream)
    run("previous_response_id refused", previous_response)
    print("6 passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
