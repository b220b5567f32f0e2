"""The HTTP API of ember.serve, apart from Ray: reading request bodies, checking them, and
writing responses and errors in the two formats served.

- OpenAI (POST /v1/embeddings): {"input", "model", "encoding_format", "dimensions", "user"},
  plus the extension "truncate". Errors: {"error": {"message", "type", "param", "code"}}.
- Text Embeddings Inference (POST /embed): {"inputs", "normalize", "truncate",
  "truncation_direction", "prompt_name", "dimensions"}. Errors: {"error", "error_type"} with
  TEI's types and statuses (Validation 413 for limits, Empty 400) and 422 for wrong types.

Inputs are a string, a list of strings, a list of token ids (one sequence) or a list of
token-id lists. Token-id sequences are final model inputs, as in TEI and vLLM: they are used as
given ([CLS]/[SEP] included), so the ids of SentenceEncoder.tokenize(text) give the text's
embedding."""
import base64
import json

import numpy as np

OPENAI_FIELDS = ("input", "model", "encoding_format", "dimensions", "user", "truncate")
TEI_FIELDS = ("inputs", "normalize", "truncate", "truncation_direction", "prompt_name",
              "dimensions")


class ApiError(Exception):
    """A request the server refuses: an HTTP status, a message naming the problem, the
    request field concerned (param), a machine-readable code, and the TEI error type."""

    def __init__(self, status, message, param=None, code=None, tei_type=None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.param = param
        self.code = code
        self.tei_type = tei_type or ("Validation" if status != 400 else "Empty")


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


# ---- bodies ---------------------------------------------------------------------------------
def parse_body(body):
    """bytes -> the JSON value. Invalid UTF-8, invalid JSON, NaN/Infinity and nesting too deep
    for the parser are ApiError 400."""
    if not body:
        raise ApiError(400, "the request body is empty; expected a JSON object",
                       code="invalid_json", tei_type="Empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "the request body is not valid UTF-8: byte 0x%02x at offset %d"
                       % (body[e.start], e.start), code="invalid_utf8",
                       tei_type="Validation") from None

    def bad_constant(name):
        raise ValueError("%s is not JSON" % name)
    try:
        return json.loads(text, parse_constant=bad_constant)
    except json.JSONDecodeError as e:
        raise ApiError(400, "the request body is not valid JSON: %s at line %d column %d"
                       % (e.msg, e.lineno, e.colno), code="invalid_json",
                       tei_type="Validation") from None
    except ValueError as e:
        raise ApiError(400, "the request body is not valid JSON: %s" % e, code="invalid_json",
                       tei_type="Validation") from None
    except RecursionError:
        raise ApiError(400, "the request body is not valid JSON here: nested too deeply",
                       code="invalid_json", tei_type="Validation") from None


def _check_text(field, i, s):
    if s == "":
        raise ApiError(400, "%s[%d] is an empty string; every input needs at least one "
                       "character" % (field, i), param=field, code="empty_input",
                       tei_type="Empty")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ApiError(400, "%s[%d] is not valid Unicode: a lone surrogate \\u%04x at "
                       "character %d" % (field, i, ord(s[e.start]), e.start), param=field,
                       code="invalid_unicode", tei_type="Validation") from None


def parse_inputs(value, field, max_inputs, wrong_type_status):
    """The input field -> ("text", [str, ...]) or ("ids", [[int, ...], ...]). Checks: present,
    not empty, at most max_inputs, one kind throughout, no empty string or sequence, valid
    Unicode, token ids plain non-negative integers (the vocabulary bound is the engine's)."""
    def wrong(msg):
        return ApiError(wrong_type_status, msg, param=field, code="invalid_type",
                        tei_type="Validation")
    if value is None:
        raise ApiError(400, "'%s' is required: a string, an array of strings, an array of "
                       "token ids or an array of token-id arrays" % field, param=field,
                       code="missing_input", tei_type="Empty")
    if isinstance(value, str):
        _check_text(field, 0, value)
        return "text", [value]
    if not isinstance(value, list):
        raise wrong("'%s' must be a string, an array of strings, an array of token ids or an "
                    "array of token-id arrays; got %s" % (field, _type_name(value)))
    if not value:
        raise ApiError(400, "'%s' is an empty array; send at least one input" % field,
                       param=field, code="empty_input", tei_type="Empty")
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return "ids", [_token_ids(value, field, wrong)]  # one token sequence
    if len(value) > max_inputs:
        raise ApiError(413 if wrong_type_status == 422 else 400,
                       "'%s' has %d inputs, more than this server's limit of %d per request"
                       % (field, len(value), max_inputs), param=field, code="too_many_inputs",
                       tei_type="Validation")
    if isinstance(first, str):
        for i, s in enumerate(value):
            if not isinstance(s, str):
                raise wrong("%s[%d] must be a string like %s[0]; got %s"
                            % (field, i, field, _type_name(s)))
            _check_text(field, i, s)
        return "text", list(value)
    if isinstance(first, list):
        out = []
        for i, s in enumerate(value):
            if not isinstance(s, list):
                raise wrong("%s[%d] must be an array of token ids like %s[0]; got %s"
                            % (field, i, field, _type_name(s)))
            out.append(_token_ids(s, "%s[%d]" % (field, i), wrong))
        return "ids", out
    raise wrong("%s[0] must be a string, a token id or an array of token ids; got %s"
                % (field, _type_name(first)))


def _token_ids(seq, where, wrong):
    if not seq:
        raise ApiError(400, "%s is an empty token sequence" % where, param=where.split("[")[0],
                       code="empty_input", tei_type="Empty")
    for j, t in enumerate(seq):
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise wrong("%s[%d] must be a token id (an integer >= 0); got %s"
                        % (where, j, json.dumps(t) if isinstance(t, (int, float))
                           else _type_name(t)))
    return seq


def _unknown(obj, known, status, code="unknown_field"):
    extra = sorted(k for k in obj if k not in known)
    if extra:
        raise ApiError(status, "unknown field%s %s; this route reads %s"
                       % ("s" if len(extra) > 1 else "", ", ".join(repr(k) for k in extra),
                          ", ".join(known)), param=extra[0], code=code,
                       tei_type="Validation")


def _optional(obj, key, kinds, what, status):
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, kinds) or (bool not in kinds and isinstance(v, bool)):
        raise ApiError(status, "'%s' must be %s; got %s" % (key, what, _type_name(v)),
                       param=key, code="invalid_type", tei_type="Validation")
    return v


def _check_dimensions(obj, hidden, status):
    d = _optional(obj, "dimensions", (int,), "an integer", status)
    if d is not None and d != hidden:
        raise ApiError(status, "'dimensions' = %d: this model's embeddings have %d dimensions "
                       "and cannot be shortened" % (d, hidden), param="dimensions",
                       code="invalid_dimensions", tei_type="Validation")


def _object(obj, status):
    if not isinstance(obj, dict):
        raise ApiError(status, "the request body must be a JSON object; got %s"
                       % _type_name(obj), code="invalid_type", tei_type="Validation")


def parse_openai(obj, model_name, hidden, max_inputs):
    """An OpenAI embeddings request -> dict(kind, inputs, base64, truncate). Everything wrong
    is 400, except a model other than the one served (404 model_not_found)."""
    _object(obj, 400)
    _unknown(obj, OPENAI_FIELDS, 400)
    kind, inputs = parse_inputs(obj.get("input"), "input", max_inputs, 400)
    model = _optional(obj, "model", (str,), "a string", 400)
    if model is not None and model != model_name:
        raise ApiError(404, "the model '%s' does not exist here; this server serves '%s'"
                       % (model, model_name), param="model", code="model_not_found")
    fmt = _optional(obj, "encoding_format", (str,), "'float' or 'base64'", 400)
    if fmt not in (None, "float", "base64"):
        raise ApiError(400, "'encoding_format' must be 'float' or 'base64'; got '%s'" % fmt,
                       param="encoding_format", code="invalid_value")
    _check_dimensions(obj, hidden, 400)
    _optional(obj, "user", (str,), "a string", 400)
    trunc = _optional(obj, "truncate", (bool,), "true or false", 400)
    return {"kind": kind, "inputs": inputs, "base64": fmt == "base64",
            "truncate": bool(trunc), "normalize": None}


def parse_tei(obj, hidden, max_inputs):
    """A TEI /embed request -> dict(kind, inputs, normalize, truncate). Wrong types are 422,
    limits 413 (TEI's Validation), empty inputs 400 (TEI's Empty)."""
    _object(obj, 422)
    _unknown(obj, TEI_FIELDS, 422)
    kind, inputs = parse_inputs(obj.get("inputs"), "inputs", max_inputs, 422)
    norm = _optional(obj, "normalize", (bool,), "true or false", 422)
    trunc = _optional(obj, "truncate", (bool,), "true or false", 422)
    direction = _optional(obj, "truncation_direction", (str,), "'right' or 'left'", 422)
    if direction is not None and direction not in ("right", "Right"):
        raise ApiError(422, "'truncation_direction' = '%s': only 'right' is supported (the "
                       "tokenizer truncates at the end, like sentence-transformers)" % direction,
                       param="truncation_direction", code="unsupported")
    if _optional(obj, "prompt_name", (str,), "a string", 422) is not None:
        raise ApiError(422, "'prompt_name': this server has no prompts configured",
                       param="prompt_name", code="unsupported")
    _check_dimensions(obj, hidden, 422)
    return {"kind": kind, "inputs": inputs, "base64": False, "truncate": bool(trunc),
            "normalize": True if norm is None else norm}


# ---- responses ------------------------------------------------------------------------------
def openai_response(vectors, model_name, prompt_tokens, as_base64):
    """[n, H] float32 -> the OpenAI response object. Floats are written as the shortest
    decimal of each float32 widened to double, so parsing them back gives the same bits;
    base64 is the little-endian float32 bytes, as OpenAI's clients decode it."""
    data = []
    for i, v in enumerate(vectors):
        if as_base64:
            emb = base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode()
        else:
            emb = v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model_name,
            "usage": {"prompt_tokens": int(prompt_tokens), "total_tokens": int(prompt_tokens)}}


def tei_response(vectors):
    return [v.tolist() for v in vectors]


def openai_error(err):
    kind = "invalid_request_error" if err.status < 500 else "server_error"
    if err.status == 404 and err.code != "model_not_found":
        kind = "not_found_error"
    return {"error": {"message": err.message, "type": kind, "param": err.param,
                      "code": err.code}}


def tei_error(err):
    return {"error": err.message, "error_type": err.tei_type}


def models_response(model_name, created):
    return {"object": "list", "data": [{"id": model_name, "object": "model",
                                        "created": int(created), "owned_by": "ember"}]}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
