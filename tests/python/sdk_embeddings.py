"""The official OpenAI Python SDK's embeddings calls against switchboard.

For each --model: `client.embeddings.create` with the SDK's default (it asks for base64 and
decodes it itself), with encoding_format="float", and with encoding_format="base64" (the
string is decoded here as little-endian float32), then an empty input, which must be a
BadRequestError naming `input`. Prints one JSON object with what each call returned, for the
Rust test to compare with the vectors it expects.
"""

import argparse
import array
import base64
import json
import sys

import openai

INPUTS = ["hello world", "a second input"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", action="append", required=True)
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
    results = {}
    for model in args.model:
        default = client.embeddings.create(model=model, input=INPUTS)
        floats = client.embeddings.create(model=model, input=INPUTS, encoding_format="float")
        encoded = client.embeddings.create(model=model, input=INPUTS, encoding_format="base64")
        try:
            client.embeddings.create(model=model, input=[])
            empty = "accepted"
        except openai.BadRequestError as error:
            empty = error.body.get("param") if isinstance(error.body, dict) else str(error.body)
        results[model] = {
            "default": [item.embedding for item in default.data],
            "float": [item.embedding for item in floats.data],
            "base64": [
                array.array("f", base64.b64decode(item.embedding)).tolist()
                for item in encoded.data
            ],
            "indexes": [item.index for item in default.data],
            "model": default.model,
            "prompt_tokens": default.usage.prompt_tokens,
            "empty_input_param": empty,
        }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
