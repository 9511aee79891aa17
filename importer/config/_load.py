"""Reading a configuration file: YAML, ``${VAR}``, both validation passes, every problem with its key path."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from importer.config._models import _ENV_RE, ENV_CONFIG, Settings
from importer.errors import ConfigError, ConfigProblem
from importer.mapping import check_mapping

# -- loading ------------------------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, interpolate and validate a config file; raise ``ConfigError`` listing every problem.

    ``path`` defaults to ``$IMPORTER_CONFIG`` or ``./config.yaml``. Relative paths inside the
    file (vault, state, logs, certificate, CA bundle) are relative to the file's directory.
    """
    env = os.environ if environ is None else environ
    file = Path(path or env.get(ENV_CONFIG) or "config.yaml")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {file} (use --config or ${ENV_CONFIG})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {file}: {exc.__class__.__name__}") from None
    return parse_settings(text, source=file, environ=env)


def parse_settings(
    text: str, *, source: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate configuration text (see ``load_settings``)."""
    label = str(source) if source else None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"not valid YAML: {where}{problem}", source=label) from None
    except RecursionError:  # the YAML parser recurses per nesting level
        raise ConfigError("not valid YAML: nested too deeply to be a configuration", source=label) from None
    if raw is None:
        raise ConfigError("the file is empty", source=label)
    if not isinstance(raw, dict):
        raise ConfigError(
            "the top level must be a mapping of keys (instance:, entra:, assets:, ...)", source=label
        )
    problems: list[ConfigProblem] = []
    data = _interpolate(raw, "", os.environ if environ is None else environ, problems)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    problems.extend(check_mapping(data.get("mapping"), data.get("sync")))
    problems.extend(_check_credentials(data))
    if problems:
        raise ConfigError(_dedupe(problems), source=label)
    assert settings is not None
    base = source.parent if source else Path.cwd()
    return _with_paths_resolved(settings, base, source)


def _interpolate(
    node: Any,
    path: str,
    env: Mapping[str, str],
    problems: list[ConfigProblem],
    ancestors: frozenset[int] = frozenset(),
) -> Any:
    if isinstance(node, dict | list):
        if id(node) in ancestors:  # `a: &x [*x]`: a YAML alias inside its own anchor
            problems.append(ConfigProblem(path, "refers to itself (a recursive YAML &anchor / *alias)"))
            return None
        ancestors = ancestors | {id(node)}
    if isinstance(node, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                ConfigProblem(path, f"environment variable {name} is not set (write ${{{name}:-default}})")
            )
            return ""

        return _ENV_RE.sub(sub, node)
    if isinstance(node, dict):
        return {k: _interpolate(v, _join(path, k), env, problems, ancestors) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems, ancestors) for i, v in enumerate(node)]
    return node


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_must_be_secret_ref(), str]",) or part.startswith(("function-", "str")):
            continue
        else:
            out = _join(out, part)
    return out


_FRIENDLY = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


def _pydantic_problems(exc: ValidationError) -> Iterator[ConfigProblem]:
    for err in exc.errors(include_url=False):
        path = _loc_path(tuple(err["loc"]))
        kind = err["type"]
        message = _FRIENDLY.get(kind, err["msg"])
        if kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        elif kind == "extra_forbidden":
            message = f"unknown key {path.rsplit('.', 1)[-1]!r}" + _expected_keys(path)
        elif kind not in _FRIENDLY and "input" in err and not isinstance(err["input"], (dict, list)):
            message = f"{message} (got {_show(err['input'])})"
        yield ConfigProblem(path, message)


def _expected_keys(path: str) -> str:
    """List the keys a section accepts, to make an 'unknown key' error actionable."""
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    model: type[BaseModel] | None = Settings
    for part in re.split(r"\.|\[\d+\]", parent):
        if not part or model is None:
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        model = _model_of(field.annotation) if field is not None else None
    if model is None:
        return ""
    names = sorted(f.alias or n for n, f in model.model_fields.items() if n != "source")
    return f"; expected one of: {', '.join(names)}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_credentials(data: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    entra = data.get("entra")
    if isinstance(entra, dict):
        has_secret = entra.get("client_secret") is not None
        has_cert = entra.get("certificate") is not None
        if has_secret == has_cert:
            yield ConfigProblem("entra", "set exactly one of client_secret (secret:NAME) or certificate")
    assets = data.get("assets")
    if isinstance(assets, dict) and assets.get("auth", "basic") == "basic" and not assets.get("email"):
        yield ConfigProblem("assets.email", "required with auth: basic (the Atlassian account's email)")
    state = data.get("state")
    if isinstance(state, dict) and state.get("backend") == "dynamodb" and not state.get("table"):
        yield ConfigProblem("state.table", "required with backend: dynamodb")


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def _with_paths_resolved(settings: Settings, base: Path, source: Path | None) -> Settings:
    def fix(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else (base / p))

    updates: dict[str, Any] = {
        "vault": settings.vault.model_copy(
            update={"path": fix(settings.vault.path), "passphrase_file": fix(settings.vault.passphrase_file)}
        ),
        "state": settings.state.model_copy(update={"path": fix(settings.state.path)}),
        "logging": settings.logging.model_copy(update={"dir": fix(settings.logging.dir)}),
        "http": settings.http.model_copy(update={"ca_bundle": fix(settings.http.ca_bundle)}),
        "source": source,
    }
    if settings.entra.certificate is not None:
        cert = settings.entra.certificate.model_copy(update={"path": fix(settings.entra.certificate.path)})
        updates["entra"] = settings.entra.model_copy(update={"certificate": cert})
    return settings.model_copy(update=updates)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors (``importer config schema``)."""
    schema = Settings.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "importer configuration"
    schema.get("properties", {}).pop("source", None)
    return schema
