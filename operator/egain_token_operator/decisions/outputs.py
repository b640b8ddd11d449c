"""The written Secret's extra keys: `spec.secretTemplate.data` and `spec.outputFormats`.

Pure: `parse_outputs` checks what an EgainToken asks for (everything the CRD
schema checks at admission, for objects stored before it or while it was
looser); `rendered_keys` turns a token into the extra keys' values. Rendering
is substitution only: a template's placeholders are replaced by the token's
values, nothing a tenant writes is executed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from egain_token_operator.decisions.schedule import StoredToken
from egain_token_operator.decisions.schema import InvalidSpecError, string_map
from egain_token_operator.decisions.timestamps import rfc3339

# The keys every written Secret holds; no extra key may take one.
FIXED_KEYS = ("access_token", "token_type", "authorization", "expires_at", "scope")
# The placeholders a `secretTemplate.data` text may hold, as `${name}`.
PLACEHOLDERS = ("accessToken", "tokenType", "authorization", "expiresAt", "issuedAt", "scope")
DEFAULT_PREFIX = "EGAIN_"
# Bounds on what a tenant writes. With them the Secret's data stays under the
# 1 MiB the API server accepts for every token whose access token and type
# together, and whose scope, are each at most 16 KiB (docs/api.md gives the sum).
MAX_DATA_ENTRIES = 8
MAX_TEXT_LENGTH = 4096
MAX_PLACEHOLDERS_PER_TEXT = 4
MAX_SECRET_KEY_LENGTH = 253
MAX_PREFIX_LENGTH = 64

# A Secret's key (as the API server checks it): these characters, not `.` or
# `..`, not starting with `..`.
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# A text made of plain characters, `$$` and the placeholders only.
_TEMPLATE = re.compile(r"(?:[^$]|\$\$|\$\{(?:" + "|".join(PLACEHOLDERS) + r")\})*", re.DOTALL)
_SUBSTITUTION = re.compile(r"\$(\$|\{(" + "|".join(PLACEHOLDERS) + r")\})")
# A DotEnv prefix: the start of a shell variable name, so every line's name is one.
_PREFIX = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*)?")


class FormatType(StrEnum):
    """The named output formats."""

    DOTENV = "DotEnv"
    JSON = "JSON"
    ENVOY_GATEWAY_CREDENTIAL = "EnvoyGatewayCredential"


DEFAULT_KEYS: Mapping[FormatType, str] = {
    FormatType.DOTENV: "egain.env",
    FormatType.JSON: "token.json",
    FormatType.ENVOY_GATEWAY_CREDENTIAL: "credential",
}
# The DotEnv file's lines, in this order: the name after the prefix, the placeholder.
_DOTENV_LINES = (
    ("ACCESS_TOKEN", "accessToken"),
    ("TOKEN_TYPE", "tokenType"),
    ("AUTHORIZATION", "authorization"),
    ("EXPIRES_AT", "expiresAt"),
    ("ISSUED_AT", "issuedAt"),
    ("SCOPE", "scope"),
)


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """One of `spec.outputFormats`, defaulted."""

    type: FormatType
    key: str
    prefix: str = DEFAULT_PREFIX


@dataclass(frozen=True, slots=True)
class Outputs:
    """The extra keys an EgainToken asks for: templates by key, and formats."""

    templates: Mapping[str, str] = field(default_factory=dict)
    formats: tuple[OutputFormat, ...] = ()

    def keys(self) -> tuple[str, ...]:
        """The extra keys' names, templates first, as `rendered_keys` writes them."""
        return (*self.templates, *(output.key for output in self.formats))


def _check_key(key: Any, field_name: str) -> str:
    if (
        not isinstance(key, str)
        or len(key) > MAX_SECRET_KEY_LENGTH
        or not _SECRET_KEY.fullmatch(key)
        or key in (".", "..")
        or key.startswith("..")
    ):
        raise InvalidSpecError(
            f"{field_name} must be a Secret key: 1 to {MAX_SECRET_KEY_LENGTH} letters, digits, "
            "'-', '_' or '.', not '.' or '..' nor starting with '..'"
        )
    if key in FIXED_KEYS:
        raise InvalidSpecError(f"{field_name} {key} is one of the Secret's fixed keys")
    return key


def _templates(template: Mapping[str, Any]) -> dict[str, str]:
    texts = dict(string_map(template.get("data"), "spec.secretTemplate.data"))
    if len(texts) > MAX_DATA_ENTRIES:
        raise InvalidSpecError(
            f"spec.secretTemplate.data must hold at most {MAX_DATA_ENTRIES} keys"
        )
    for key, text in texts.items():
        # An invalid key is named only once it is known to be safe to print.
        _check_key(key, "spec.secretTemplate.data: a key")
        where = f"spec.secretTemplate.data[{key}]"
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidSpecError(f"{where} must be at most {MAX_TEXT_LENGTH} characters")
        if not _TEMPLATE.fullmatch(text):
            raise InvalidSpecError(f"{where} holds a $ that is neither $$ nor a placeholder")
        if len(_placeholders(text)) > MAX_PLACEHOLDERS_PER_TEXT:
            raise InvalidSpecError(
                f"{where} must hold at most {MAX_PLACEHOLDERS_PER_TEXT} placeholders"
            )
    return texts


def _placeholders(text: str) -> list[str]:
    return [name for _, name in _SUBSTITUTION.findall(text) if name]


def _format(item: Any, index: int) -> OutputFormat:
    where = f"spec.outputFormats[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidSpecError(f"{where} must be an object")
    try:
        kind = FormatType(str(item.get("type")))
    except ValueError:
        raise InvalidSpecError(
            f"{where}.type must be DotEnv, JSON or EnvoyGatewayCredential"
        ) from None
    key = _check_key(item.get("key", DEFAULT_KEYS[kind]), f"{where}.key")
    prefix = item.get("prefix")
    if prefix is not None and kind is not FormatType.DOTENV:
        raise InvalidSpecError(f"{where}.prefix is for DotEnv only")
    if prefix is None:
        prefix = DEFAULT_PREFIX
    if (
        not isinstance(prefix, str)
        or len(prefix) > MAX_PREFIX_LENGTH
        or not _PREFIX.fullmatch(prefix)
    ):
        raise InvalidSpecError(
            f"{where}.prefix must be at most {MAX_PREFIX_LENGTH} letters, digits or '_', "
            "not starting with a digit"
        )
    return OutputFormat(kind, key, prefix)


def parse_outputs(spec: Mapping[str, Any]) -> Outputs:
    """`spec.secretTemplate.data` and `spec.outputFormats`, checked, or
    `InvalidSpecError` naming the field and the key."""
    template = spec.get("secretTemplate") or {}
    if not isinstance(template, Mapping):
        raise InvalidSpecError("spec.secretTemplate must be an object")
    texts = _templates(template)
    items = spec.get("outputFormats") or []
    if not isinstance(items, list) or len(items) > len(FormatType):
        raise InvalidSpecError(f"spec.outputFormats must list at most {len(FormatType)} formats")
    formats = tuple(_format(item, index) for index, item in enumerate(items))
    for index, output in enumerate(formats):
        where = f"spec.outputFormats[{index}]"
        if any(other.type is output.type for other in formats[:index]):
            raise InvalidSpecError(f"{where}.type {output.type} is listed twice")
        if output.key in texts or any(other.key == output.key for other in formats[:index]):
            raise InvalidSpecError(f"{where}.key {output.key} is another key of the Secret")
    return Outputs(texts, formats)


def token_values(token: StoredToken) -> dict[str, str]:
    """The token's values, by placeholder name: what every output writes."""
    return {
        "accessToken": token.access_token,
        "tokenType": token.token_type,
        "authorization": f"{token.token_type} {token.access_token}",
        "expiresAt": rfc3339(token.expires_at),
        "issuedAt": rfc3339(token.issued_at),
        "scope": " ".join(token.scopes),
    }


def render_template(text: str, values: Mapping[str, str]) -> str:
    """`text` with each placeholder replaced by its value and `$$` by `$`.
    `text` is one `parse_outputs` accepted."""
    return _SUBSTITUTION.sub(lambda m: values[m[2]] if m[2] else "$", text)


def dotenv(values: Mapping[str, str], prefix: str) -> str:
    """The DotEnv file: one `NAME=value` line per value, the value written as it is.

    Docker's `--env-file` takes everything after the first `=` literally, so any
    quoting would reach the program. python-dotenv reads an unquoted value back
    the same unless it starts with a quote, holds a blank followed by `#` (a
    comment) or `${` (a variable); an eGain token (a JWT: base64url and dots), a
    token type, the timestamps and scopes without `#` or `$` never do.
    """
    return "".join(f"{prefix}{name}={values[placeholder]}\n" for name, placeholder in _DOTENV_LINES)


def json_document(values: Mapping[str, str], scopes: tuple[str, ...]) -> str:
    """The JSON format: one object."""
    document = {key: values[key] for key in PLACEHOLDERS if key != "scope"}
    return json.dumps({**document, "scopes": list(scopes)}, ensure_ascii=False)


def rendered_keys(token: StoredToken, outputs: Outputs) -> dict[str, str]:
    """The extra keys' values for `token`, as text."""
    values = token_values(token)
    keys = {key: render_template(text, values) for key, text in outputs.templates.items()}
    for output in outputs.formats:
        if output.type is FormatType.DOTENV:
            keys[output.key] = dotenv(values, output.prefix)
        elif output.type is FormatType.JSON:
            keys[output.key] = json_document(values, token.scopes)
        else:
            keys[output.key] = values["authorization"]
    return keys
