"""Gemini ``generateContent`` / ``streamGenerateContent``, under ``/gemini/v1beta``.

The REST API accepts both lowerCamelCase and snake_case field names; so does this.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from aiohttp import web

from modelmix.simulated.answers import Answer, Ask, Tool
from modelmix.simulated.wire import (
    NON_TEXT_PART_CHARS,
    SIMULATED_FINISH,
    RequestError,
    fake_logprob,
    new_id,
    split_text,
)
from modelmix.wire.gemini.vocabulary import STATUS_FOR_HTTP, WIRE_FINISH

_FINISH = {finish: WIRE_FINISH[reason] for finish, reason in SIMULATED_FINISH.items()}
_ACTIONS = ("generateContent", "streamGenerateContent")
#: Gemini streams bigger chunks than OpenAI or Anthropic.
_WORDS_PER_CHUNK = 3

_OVERLOADED = "The model is overloaded. Please try again later. (simulated)"
#: The message of an error body per HTTP status (its ``status`` name comes from the
#: vocabulary; 529, which Google never sends, is written as 503's); others are ``INTERNAL``.
_ERRORS: dict[int, str] = {
    400: "Invalid request.",
    401: "API key not valid. Please pass a valid API key.",
    403: "The caller does not have permission.",
    404: "Not found.",
    429: "Resource has been exhausted (e.g. check quota). (simulated)",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting (simulated)",
    503: _OVERLOADED,
    529: _OVERLOADED,
}


def _get(data: dict[str, Any], camel: str, snake: str) -> Any:
    value = data.get(camel)
    return data.get(snake) if value is None else value


def _part_chars(part: dict[str, Any]) -> int:
    text = part.get("text")
    if isinstance(text, str):
        return len(text)
    call = _get(part, "functionCall", "function_call")
    if isinstance(call, dict):
        return len(orjson.dumps(call))
    response = _get(part, "functionResponse", "function_response")
    if isinstance(response, dict):
        return len(orjson.dumps(response))
    return NON_TEXT_PART_CHARS


class GeminiWire:
    kind = "gemini"

    def stream_content_type(self, ask: Ask) -> str:
        return "text/event-stream" if ask.sse else "application/json; charset=UTF-8"

    def api_key(self, request: web.Request) -> str | None:
        key = request.headers.get("x-goog-api-key")
        return key if key is not None else request.query.get("key")

    def parse(self, body: Any, request: web.Request) -> Ask:
        model, _, action = request.match_info["target"].partition(":")
        if action not in _ACTIONS or not model:
            raise RequestError(
                f"Method not found: models/{request.match_info['target']}", status=404
            )
        if not isinstance(body, dict):
            raise RequestError("Invalid JSON payload received. Expected an object.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise RequestError("* GenerateContentRequest.contents: contents is not specified\n")
        ask = Ask(
            model=model,
            stream=action == "streamGenerateContent",
            sse=request.query.get("alt") == "sse",
        )
        self._read_contents(contents, ask)
        system = _get(body, "systemInstruction", "system_instruction")
        if isinstance(system, dict):
            for part in system.get("parts") or ():
                if isinstance(part, dict):
                    ask.prompt_chars += _part_chars(part)
        config = _get(body, "generationConfig", "generation_config")
        if isinstance(config, dict):
            self._read_config(config, ask)
        self._read_tools(body, ask)
        return ask

    def _read_contents(self, contents: list[Any], ask: Ask) -> None:
        last_parts: list[Any] = []
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                raise RequestError(f"* GenerateContentRequest.contents[{i}]: must be an object\n")
            role = content.get("role", "user")
            if role not in ("user", "model"):
                raise RequestError("Please use a valid role: user, model.")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise RequestError(
                    f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not "
                    "be empty.\n"
                )
            texts = []
            for part in parts:
                if not isinstance(part, dict):
                    raise RequestError(f"* GenerateContentRequest.contents[{i}].parts: invalid\n")
                ask.prompt_chars += _part_chars(part)
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
            if role == "user" and texts:
                ask.last_user_text = "\n".join(texts)
            last_parts = parts
        responses = [
            r
            for p in last_parts
            if isinstance(r := _get(p, "functionResponse", "function_response"), dict)
        ]
        if responses:
            response = responses[-1]
            result = response.get("response")
            text = result if isinstance(result, str) else orjson.dumps(result).decode()
            ask.tool_result = (str(response.get("name")), text)

    def _read_config(self, config: dict[str, Any], ask: Ask) -> None:
        max_tokens = _get(config, "maxOutputTokens", "max_output_tokens")
        if max_tokens is not None:
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
                raise RequestError(
                    "* GenerateContentRequest.generation_config.max_output_tokens: "
                    "must be a positive integer\n"
                )
            ask.max_tokens = max_tokens
        stop = _get(config, "stopSequences", "stop_sequences")
        if isinstance(stop, list):
            ask.stop = [s for s in stop if isinstance(s, str)]
        ask.logprobs = _get(config, "responseLogprobs", "response_logprobs") is True
        top = config.get("logprobs")
        if top is not None:
            if not ask.logprobs:
                raise RequestError(
                    "* GenerateContentRequest.generation_config.logprobs: logprobs is only "
                    "valid if response_logprobs is true\n"
                )
            if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
                raise RequestError(
                    "* GenerateContentRequest.generation_config.logprobs: must be in the range "
                    "[0, 20]\n"
                )
            ask.top_logprobs = top
        mime = _get(config, "responseMimeType", "response_mime_type")
        schema = None
        for camel, snake in (
            ("responseJsonSchema", "response_json_schema"),
            ("responseSchema", "response_schema"),
            ("_responseJsonSchema", "_response_json_schema"),
        ):
            schema = schema or _get(config, camel, snake)
        if schema is not None and mime != "application/json":
            raise RequestError(
                "* GenerateContentRequest.generation_config.response_mime_type: "
                "response_mime_type must be application/json when a response schema is set.\n"
            )
        if mime == "application/json":
            if isinstance(schema, dict):
                ask.json_schema = schema
            else:
                ask.json_mode = True

    def _read_tools(self, body: dict[str, Any], ask: Ask) -> None:
        tools = body.get("tools")
        if isinstance(tools, list):
            for tool in tools:
                if not isinstance(tool, dict):
                    continue
                declarations = _get(tool, "functionDeclarations", "function_declarations")
                for declaration in declarations or ():
                    name = declaration.get("name") if isinstance(declaration, dict) else None
                    if not isinstance(name, str) or not name:
                        raise RequestError(
                            "* GenerateContentRequest.tools[0].function_declarations[0].name: "
                            "Name cannot be empty.\n"
                        )
                    schema = _get(declaration, "parametersJsonSchema", "parameters_json_schema")
                    if schema is None:
                        schema = declaration.get("parameters")
                    ask.tools.append(Tool(name, schema if isinstance(schema, dict) else {}))
                    ask.prompt_chars += len(orjson.dumps(declaration))
        config = _get(body, "toolConfig", "tool_config")
        calling = (
            _get(config, "functionCallingConfig", "function_calling_config")
            if isinstance(config, dict)
            else None
        )
        if not isinstance(calling, dict):
            return
        mode = str(calling.get("mode", "AUTO")).upper()
        if mode == "NONE":
            ask.no_tools = True
        allowed = _get(calling, "allowedFunctionNames", "allowed_function_names")
        if mode in ("ANY", "VALIDATED") and isinstance(allowed, list) and allowed:
            ask.forced_tool = str(allowed[0])

    def error(self, status: int, error: RequestError | None = None) -> bytes:
        message = _ERRORS.get(status)
        if message is None:
            code, message = "INTERNAL", "Upstream error (simulated)."
        else:
            code = STATUS_FOR_HTTP[503 if status == 529 else status]
        if error is not None:
            message = error.message
        return orjson.dumps({"error": {"code": status, "message": message, "status": code}})

    def response(self, ask: Ask, answer: Answer) -> bytes:
        return orjson.dumps(_chunk(ask, answer, _parts(answer), True, new_id("")))

    def stream(self, ask: Ask, answer: Answer) -> list[bytes]:
        response_id = new_id("")
        if answer.tool_name is not None:
            chunks = [_chunk(ask, answer, _parts(answer), True, response_id)]
        else:
            words = split_text(answer.text or "")
            pieces = [
                "".join(words[i : i + _WORDS_PER_CHUNK])
                for i in range(0, len(words), _WORDS_PER_CHUNK)
            ]
            chunks = [
                _chunk(ask, answer, [{"text": piece}], i == len(pieces) - 1, response_id)
                for i, piece in enumerate(pieces)
            ]
        if ask.sse:
            return [b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks]
        frames = [b"[" + orjson.dumps(chunks[0])]
        frames.extend(b"\n,\r\n" + orjson.dumps(c) for c in chunks[1:])
        frames.append(b"]")
        return frames

    def malformed_stream(self, ask: Ask) -> list[bytes]:
        if ask.sse:
            return [b'data: {"candidates": [{"content": \r\n\r\n']
        return [b'[{"candidates": [{"content": ']


def _parts(answer: Answer) -> list[dict[str, Any]]:
    if answer.tool_name is not None:
        return [{"functionCall": {"name": answer.tool_name, "args": answer.tool_input or {}}}]
    return [{"text": answer.text or ""}]


def _logprob_candidate(token: str, logprob: float) -> dict[str, Any]:
    return {
        "token": token,
        "tokenId": zlib.crc32(token.encode()) % 256_000,
        "logProbability": logprob,
    }


def _logprobs_result(ask: Ask, text: str) -> dict[str, Any]:
    """Made-up, deterministic log probabilities, one step per streamed piece of ``text``."""
    chosen = []
    top = []
    for token in split_text(text):
        logprob = fake_logprob(token)
        chosen.append(_logprob_candidate(token, logprob))
        alternatives = [_logprob_candidate(f"alt{i}", logprob - i) for i in range(1, 20)]
        top.append({"candidates": [chosen[-1], *alternatives][: ask.top_logprobs]})
    return {"topCandidates": top, "chosenCandidates": chosen}


def _chunk(
    ask: Ask, answer: Answer, parts: list[dict[str, Any]], last: bool, response_id: str
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    text = "".join(p.get("text", "") for p in parts)
    if ask.logprobs and text:
        result = _logprobs_result(ask, text)
        candidate["logprobsResult"] = result
        steps = result["chosenCandidates"]
        candidate["avgLogprobs"] = sum(c["logProbability"] for c in steps) / len(steps)
    usage: dict[str, Any] = {
        "promptTokenCount": answer.prompt_tokens,
        "totalTokenCount": answer.prompt_tokens,
    }
    if last:
        candidate["finishReason"] = _FINISH[answer.finish]
        usage["candidatesTokenCount"] = answer.completion_tokens
        usage["totalTokenCount"] = answer.prompt_tokens + answer.completion_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer.prompt_tokens}]
    if answer.cached_tokens:
        usage["cachedContentTokenCount"] = answer.cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer.cached_tokens}]
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": ask.model,
        "responseId": response_id,
    }
