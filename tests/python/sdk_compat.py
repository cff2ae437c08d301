#!/usr/bin/env python3
"""Client compatibility: the official `openai` Python SDK against a running switchboard.

Usage:
    sdk_compat.py --base-url http://127.0.0.1:8080/v1 --api-key KEY \
        [--chat-model demo] [--tool-model ROUTE [--expect-usage]] [--thinking-model ROUTE]

Every option can come from the environment instead: SWITCHBOARD_BASE_URL,
SWITCHBOARD_API_KEY, SWITCHBOARD_CHAT_MODEL, SWITCHBOARD_TOOL_MODEL,
SWITCHBOARD_EXPECT_USAGE=1.

`--chat-model` must be a route to the built-in mock (`kind = "mock"`, no fixed `reply`): the
checks expect it to echo the last user message. `--tool-model` must answer with a call to
`get_weather` (forced through `tool_choice`); it is asked once without and then once with
streaming, in that order. Without it the tool-call checks are skipped (and say so).
`--expect-usage` makes the tool-call checks require usage: on the plain reply, and on a last
chunk of its own (no choices) in the stream, which is then asked for with
`stream_options={"include_usage": True}`. Usage, when present, is shown as
`usage PROMPT+COMPLETION=TOTAL` and must add up; the call as `get_weather(<arguments as
compact JSON, keys sorted>)`.
`--thinking-model` must answer the weather question with reasoning (`thinking_blocks`) and a
`get_weather` call, then accept the conversation sent back with the assistant message as the
SDK returned it (`message.to_dict()`, or rebuilt from the stream's deltas) plus the tool's
answer, and answer it; it is asked plainly (two requests), then streaming (two more).
The wrong-key check needs `[[keys]]` configured on the router.

Prints one line per check; exits 1 with the failing check's message on the first failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from typing import Any, Callable

import openai

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url",
        default=env("SWITCHBOARD_BASE_URL"),
        help="the router's OpenAI base URL, ending in /v1",
    )
    parser.add_argument(
        "--api-key",
        default=env("SWITCHBOARD_API_KEY", "sk-no-key-configured"),
        help="a valid client key (any string when the router has no [[keys]])",
    )
    parser.add_argument(
        "--chat-model",
        default=env("SWITCHBOARD_CHAT_MODEL", "demo"),
        help="a route to the built-in mock (echoes the last user message)",
    )
    parser.add_argument(
        "--tool-model",
        default=env("SWITCHBOARD_TOOL_MODEL"),
        help="a route whose upstream answers with a get_weather tool call",
    )
    parser.add_argument(
        "--expect-usage",
        action="store_true",
        default=env("SWITCHBOARD_EXPECT_USAGE", "") not in ("", "0"),
        help="the tool-call checks require usage (the stream one asks for it)",
    )
    parser.add_argument(
        "--thinking-model",
        default=env("SWITCHBOARD_THINKING_MODEL"),
        help="a route that thinks, calls get_weather, and needs its thinking back next turn",
    )
    parser.add_argument(
        "--payment-model",
        default=env("SWITCHBOARD_PAYMENT_MODEL"),
        help="a route whose pay-per-call seller quotes (402), then serves against a proof",
    )
    parser.add_argument(
        "--payment-proof",
        default=env("SWITCHBOARD_PAYMENT_PROOF", ""),
        help="the Payment-Proof header the seller accepts",
    )
    args = parser.parse_args(argv)
    if not args.base_url:
        parser.error("--base-url (or SWITCHBOARD_BASE_URL) is required")
    return args


class Checks:
    def __init__(self) -> None:
        self.passed = 0

    def run(self, name: str, check: Callable[[], str | None]) -> None:
        try:
            detail = check()
        except AssertionError as error:
            self.fail(name, f"assertion failed: {error}" if str(error) else "assertion failed")
        except Exception as error:  # any SDK or transport error fails the check
            self.fail(name, f"{type(error).__name__}: {error}")
        self.passed += 1
        print(f"ok   {name}" + (f" ({detail})" if detail else ""), flush=True)

    @staticmethod
    def fail(name: str, message: str) -> None:
        print(f"FAIL {name}: {message}", flush=True)
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)


def expect_error(
    error_class: type[openai.APIStatusError], call: Callable[[], Any], hint: str = ""
) -> Any:
    """Runs `call`, which must raise exactly `error_class`; returns the error."""
    try:
        result = call()
    except error_class as error:
        return error
    except openai.APIError as error:
        raise AssertionError(
            f"expected {error_class.__name__}, got {type(error).__name__}: {error}"
        ) from error
    raise AssertionError(f"expected {error_class.__name__}{hint}, got a response: {result!r}")


def check_error_fields(
    error: openai.APIStatusError, status: int, code: str, param: str | None
) -> None:
    assert error.status_code == status, f"status {error.status_code} != {status}"
    # The SDK keeps the inner `error` object as `body` and lifts its fields.
    body = error.body
    assert isinstance(body, dict), f"error body is not the error object: {body!r}"
    assert body.get("code") == code, f"body code {body.get('code')!r} != {code!r}"
    assert body.get("type") == "invalid_request_error", f"body type {body.get('type')!r}"
    assert body.get("param") == param, f"body param {body.get('param')!r} != {param!r}"
    assert isinstance(body.get("message"), str) and body["message"], "body has no message"
    assert error.code == code, f"e.code {error.code!r} != {code!r}"
    assert error.param == param, f"e.param {error.param!r} != {param!r}"
    assert error.type == "invalid_request_error", f"e.type {error.type!r}"
    assert body["message"] in str(error), f"message not in str(e): {error}"


def describe_usage(usage: Any) -> str:
    """`PROMPT+COMPLETION=TOTAL`, after checking the numbers add up."""
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, field)
        assert isinstance(value, int) and value >= 0, f"usage.{field} {value!r}"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
    return f"{usage.prompt_tokens}+{usage.completion_tokens}={usage.total_tokens}"


def describe_call(name: str, arguments: str) -> str:
    """`name({...})` with the arguments parsed (they must be a JSON object with a city)."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, dict) and parsed.get("city"), parsed
    return f"{name}({json.dumps(parsed, sort_keys=True, separators=(',', ':'))})"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30)
    checks = Checks()
    print(f"openai {openai.__version__} against {args.base_url}", flush=True)

    def non_stream() -> str:
        prompt = "hello from the python sdk"
        raw = client.chat.completions.with_raw_response.create(
            model=args.chat_model, messages=[{"role": "user", "content": prompt}]
        )
        assert raw.headers.get("x-switchboard-attempts") == "1", dict(raw.headers)
        completion = raw.parse()
        assert completion.object == "chat.completion", completion.object
        assert len(completion.choices) == 1, completion.choices
        choice = completion.choices[0]
        assert choice.message.role == "assistant", choice.message.role
        assert choice.message.content == prompt, f"echo {choice.message.content!r} != {prompt!r}"
        assert choice.finish_reason == "stop", choice.finish_reason
        usage = completion.usage
        assert usage is not None, "no usage"
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
        return f"model {completion.model}, provider {raw.headers.get('x-switchboard-provider')}"

    def stream() -> str:
        prompt = "streamed word by word through the router"
        chunks = list(
            client.chat.completions.create(
                model=args.chat_model,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks, "no chunks"
        assert all(c.object == "chat.completion.chunk" for c in chunks), "wrong object"
        assert len({c.id for c in chunks}) == 1, "chunks carry different ids"
        text = ""
        finishes = []
        for chunk in chunks:
            if not chunk.choices:  # the usage chunk has none
                continue
            choice = chunk.choices[0]
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
        assert text == prompt, f"joined {text!r} != {prompt!r}"
        assert finishes == ["stop"], f"finish reasons {finishes}"
        last = chunks[-1]
        assert last.choices == [], f"last chunk has choices: {last.choices}"
        assert last.usage is not None, "last chunk has no usage"
        usage = last.usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
        assert all(c.usage is None for c in chunks[:-1]), "usage before the last chunk"
        return f"{len(chunks)} chunks, {usage.total_tokens} tokens"

    def tool_call() -> str:
        completion = client.chat.completions.create(
            model=args.tool_model,
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice=FORCE_WEATHER,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls", choice.finish_reason
        calls = choice.message.tool_calls
        assert calls and len(calls) == 1, f"tool_calls {calls!r}"
        call = calls[0]
        assert call.type == "function", call.type
        assert call.id, "tool call without id"
        assert call.function.name == "get_weather", call.function.name
        detail = describe_call(call.function.name, call.function.arguments)
        if args.expect_usage:
            assert completion.usage is not None, "no usage"
        if completion.usage is not None:
            detail += f"; usage {describe_usage(completion.usage)}"
        return detail

    def tool_call_stream() -> str:
        calls: dict[int, dict[str, str]] = {}
        finishes = []
        fragments = 0
        usage_options: dict[str, Any] = (
            {"stream_options": {"include_usage": True}} if args.expect_usage else {}
        )
        chunks = list(
            client.chat.completions.create(
                model=args.tool_model,
                messages=WEATHER_QUESTION,
                tools=[WEATHER_TOOL],
                tool_choice=FORCE_WEATHER,
                stream=True,
                **usage_options,
            )
        )
        assert chunks, "no chunks"
        for chunk in chunks:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    if delta.function.arguments:
                        fragments += 1
                        call["arguments"] += delta.function.arguments
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
        assert list(calls) == [0], f"tool call indexes {list(calls)}"
        call = calls[0]
        assert call["id"], "streamed tool call without id"
        assert call["name"] == "get_weather", call["name"]
        detail = describe_call(call["name"], call["arguments"])
        assert finishes == ["tool_calls"], f"finish reasons {finishes}"
        detail += f" from {fragments} fragments"
        if args.expect_usage:
            last = chunks[-1]
            assert last.choices == [], f"last chunk has choices: {last.choices}"
            assert last.usage is not None, "last chunk has no usage"
            assert all(c.usage is None for c in chunks[:-1]), "usage before the last chunk"
            detail += f"; usage {describe_usage(last.usage)}"
        return detail

    def thinking_turn(messages: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
        """One turn with reasoning on; the assistant message as a client would keep it."""
        request = dict(
            model=args.thinking_model,
            messages=messages,
            tools=[WEATHER_TOOL],
            reasoning_effort="medium",
        )
        if not stream:
            return client.chat.completions.create(**request).choices[0].message.to_dict()
        message: dict[str, Any] = {"role": "assistant", "content": None}
        reasoning = ""
        blocks: list[Any] = []
        calls: dict[int, dict[str, Any]] = {}
        for chunk in client.chat.completions.create(stream=True, **request):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                message["content"] = (message["content"] or "") + delta.content
            extra = delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or ""
            blocks.extend(extra.get("thinking_blocks") or [])
            for part in delta.tool_calls or []:
                call = calls.setdefault(
                    part.index,
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["function"]["name"] += part.function.name or ""
                    call["function"]["arguments"] += part.function.arguments or ""
        message["reasoning_content"] = reasoning
        message["thinking_blocks"] = blocks
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return message

    def thinking_loop(stream: bool) -> Callable[[], str]:
        def check() -> str:
            messages: list[dict[str, Any]] = list(WEATHER_QUESTION)
            first = thinking_turn(messages, stream)
            blocks = first.get("thinking_blocks") or []
            assert blocks, f"no thinking_blocks on {first!r}"
            assert first.get("reasoning_content"), f"no reasoning_content on {first!r}"
            calls = first.get("tool_calls") or []
            assert len(calls) == 1, f"tool_calls {calls!r}"
            messages.append(first)
            messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"})
            second = thinking_turn(messages, stream)
            assert second.get("content"), f"no answer on turn 2: {second!r}"
            kinds = ",".join(block["type"] for block in blocks)
            return f"{kinds} sent back; {second['content']}"

        return check

    def bad_request() -> str:
        error = expect_error(
            openai.BadRequestError,
            lambda: client.chat.completions.create(model=args.chat_model, messages=[]),
        )
        check_error_fields(error, 400, "invalid_request_error", "messages")
        return error.body["message"]

    def wrong_key() -> str:
        wrong = client.with_options(api_key="sk-definitely-not-a-switchboard-key")
        error = expect_error(
            openai.AuthenticationError,
            lambda: wrong.chat.completions.create(
                model=args.chat_model, messages=[{"role": "user", "content": "hi"}]
            ),
            hint=" (does the router have [[keys]] configured?)",
        )
        check_error_fields(error, 401, "invalid_api_key", None)
        return error.body["message"]

    def unknown_model() -> str:
        error = expect_error(
            openai.NotFoundError,
            lambda: client.chat.completions.create(
                model="no-such-model-anywhere", messages=[{"role": "user", "content": "hi"}]
            ),
        )
        check_error_fields(error, 404, "model_not_found", "model")
        assert "no-such-model-anywhere" in error.body["message"], error.body["message"]
        return error.body["message"]

    def payment_quote() -> str:
        error = expect_error(
            openai.APIStatusError,
            lambda: client.chat.completions.create(
                model=args.payment_model, messages=[{"role": "user", "content": "pay me"}]
            ),
        )
        assert error.status_code == 402, f"status {error.status_code}"
        assert error.code == "payment_required", f"code {error.code!r}"
        needed = error.response.headers.get("payment-needed")
        assert needed, "no Payment-Needed header"
        seller = error.response.headers.get("x-switchboard-provider")
        return f"{needed} from {seller}"

    def payment_retry() -> str:
        raw = client.chat.completions.with_raw_response.create(
            model=args.payment_model,
            messages=[{"role": "user", "content": "pay me"}],
            extra_headers={"Payment-Proof": args.payment_proof},
        )
        completion = raw.parse()
        assert completion.choices, "no choices"
        return f"cost {raw.headers.get('x-switchboard-cost')}"

    def too_large(asynchronous: bool) -> Callable[[], str]:
        """A body over the router's 4 MiB default: the SDK must read the 413 (with its default
        retries on: the router says not to retry), not fail on a reset connection."""
        messages = [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]

        async def call_async() -> Any:
            async with openai.AsyncOpenAI(
                base_url=args.base_url, api_key=args.api_key, timeout=30
            ) as async_client:
                return await async_client.chat.completions.create(
                    model=args.chat_model, messages=messages
                )

        def call_sync() -> Any:
            sync_client = client.with_options(max_retries=2)
            return sync_client.chat.completions.create(model=args.chat_model, messages=messages)

        def check() -> str:
            call = (lambda: asyncio.run(call_async())) if asynchronous else call_sync
            error = expect_error(openai.APIStatusError, call)
            assert error.status_code == 413, f"status {error.status_code}"
            assert error.code == "request_too_large", f"code {error.code!r}"
            assert error.response.headers.get("x-should-retry") == "false", dict(error.response.headers)
            return error.body["message"]

        return check

    checks.run("chat, non-stream", non_stream)
    checks.run("chat, stream with include_usage", stream)
    if args.tool_model:
        checks.run("tool call, non-stream", tool_call)
        checks.run("tool call, stream", tool_call_stream)
    else:
        print("skip tool calls (no --tool-model)", flush=True)
    if args.thinking_model:
        checks.run("thinking tool loop, non-stream", thinking_loop(stream=False))
        checks.run("thinking tool loop, stream", thinking_loop(stream=True))
    checks.run("BadRequestError for empty messages", bad_request)
    checks.run("AuthenticationError for a wrong key", wrong_key)
    checks.run("NotFoundError for an unknown model", unknown_model)
    checks.run("413 for a body too large, sync client", too_large(asynchronous=False))
    checks.run("413 for a body too large, AsyncOpenAI", too_large(asynchronous=True))
    if args.payment_model:
        checks.run("APIStatusError 402 for a price quote", payment_quote)
        checks.run("paid retry with Payment-Proof", payment_retry)
    print(f"{checks.passed} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
