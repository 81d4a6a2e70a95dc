"""Readers for the deployment files, as Docker and Compose read them: Compose interpolation and ``.env`` files, the
Dockerfile's instructions, ``.dockerignore`` patterns, and uv's hashed lock files.

Small on purpose: each follows the documented rules only as far as this project's files use them, and each is
exercised against a counter-example in the tests, so that a reader that matches nothing cannot pass a check.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
IMAGE_LOCK = REPO / "requirements" / "image.lock.txt"
CI_LOCK = REPO / "requirements" / "airflow3.lock.txt"
BUILD_REQUIREMENTS = REPO / "deploy" / "build-requirements.txt"
MDCA_COMPOSE = REPO / "deploy" / "mdca_compose.py"
NEW_ENV = REPO / "deploy" / "new_env.py"

# -- Compose interpolation (https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/) --

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(Exception):
    """A required variable (``${VAR:?message}``) is unset or empty: Compose refuses to start and says this."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` (a parsed Compose file or any part of it) with every ``${...}`` resolved against ``env``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"{name}: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if missing else arg
        return current or ""

    return _VARIABLE.sub(resolve, value)


def variables(text: str) -> dict[str, str | None]:
    """Every variable the text interpolates, with its operator (``:?``, ``:-``, ... or None)."""
    found: dict[str, str | None] = {}
    for match in _VARIABLE.finditer(text):
        name = match["braced"] or match["bare"]
        if name and (found.get(name) is None or match["op"] == ":?"):
            found[name] = match["op"]
    return found


def parse_env_file(text: str) -> dict[str, str]:
    """A ``.env`` file as Compose reads it (the subset the project uses): ``KEY=value``, ``'literal'`` values."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not KEY=value: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def documented_keys(text: str) -> set[str]:
    """The keys an env file documents: set (``KEY=``) or shown commented out (``# KEY=``)."""
    return set(re.findall(r"(?m)^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", text))


def uncomment(text: str, keys: Iterable[str]) -> str:
    """The env file with the commented-out ``# KEY=value`` lines of ``keys`` switched on."""
    out = text
    for key in keys:
        out, count = re.subn(rf"(?m)^#\s*({re.escape(key)}=)", r"\1", out)
        assert count == 1, f"{key} is not shown commented out exactly once"
    return out


def env_file_paths(service: Mapping[str, Any]) -> list[str]:
    """The files a service's ``env_file`` names (a string, or a list of strings or of ``{path: ...}``), in order."""
    entries = service.get("env_file") or []
    if isinstance(entries, str):
        entries = [entries]
    return [entry["path"] if isinstance(entry, dict) else str(entry) for entry in entries]


def with_env_files(data: Mapping[str, Any], base: Path = REPO) -> dict[str, Any]:
    """The Compose file with each service's ``env_file`` folded into its ``environment``, as Compose sets up a
    container: the files' values in order, then ``environment`` on top (it wins a key both set)."""
    services = {}
    for name, service in data["services"].items():
        environment: dict[str, Any] = {}
        for path in env_file_paths(service):
            environment.update(parse_env_file((base / path).read_text(encoding="utf-8")))
        environment.update(service.get("environment") or {})
        services[name] = {**service, "environment": environment}
    return {**data, "services": services}


# -- volumes and ports, short syntax --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    named: bool


def mounts(service: Mapping[str, Any], named_volumes: Iterable[str]) -> list[Mount]:
    named = set(named_volumes)
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
            read_only, kind = bool(entry.get("read_only")), entry.get("type")
            out.append(Mount(source, target, read_only, kind == "volume" and source in named))
            continue
        parts = entry.split(":")
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        out.append(Mount(source, target, "ro" in options, source in named))
    return out


def fixed_host_ports(service: Mapping[str, Any]) -> list[str]:
    """The ports a service publishes on a fixed host port (two replicas of it could not start)."""
    fixed = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if entry.get("published"):
                fixed.append(str(entry))
        elif len(str(entry).split(":")) >= 2:
            fixed.append(str(entry))
    return fixed


# -- Dockerfile ----------------------------------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions (continuations joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, args = instruction.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None


def copies(stage: Stage) -> list[Copy]:
    out = []
    for keyword, args in stage.instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(args)
        flags = {w.split("=", 1)[0]: w.split("=", 1)[-1] for w in words if w.startswith("--")}
        paths = [w for w in words if not w.startswith("--")]
        out.append(Copy(tuple(paths[:-1]), paths[-1], flags.get("--from")))
    return out


# -- .dockerignore (moby/patternmatcher: the last matching pattern wins, a pattern matches a path or a parent) ----


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, str, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:].strip() if negated else line
            pattern = "/".join(part for part in pattern.strip("/").split("/") if part not in ("", "."))
            self.rules.append((negated, pattern, _pattern_regex(pattern)))

    def included(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is sent to the builder."""
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        excluded = False
        for negated, _, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not negated
        return not excluded

    @property
    def exceptions(self) -> list[str]:
        """The patterns after ``!``: what the allow-list lets in."""
        return [pattern for negated, pattern, _ in self.rules if negated]


def context_files(root: Path, source: str, ignore: DockerIgnore) -> list[str]:
    """The files under ``source`` that the build context holds."""
    path = root / source
    candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    relative = [p.relative_to(root).as_posix() for p in candidates]
    return [r for r in relative if ignore.included(r)]


# -- uv's hashed lock files -----------------------------------------------------------------------------------------


@dataclass
class Pin:
    name: str
    version: str
    marker: str | None
    hashes: frozenset[str]
    via: frozenset[str]
    text: str

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(dict(environment))


def parse_lock(path: Path) -> list[Pin]:
    pins: list[Pin] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line or line[0] in " #-":
            i += 1
            continue
        block = [line]
        i += 1
        while i < len(lines) and lines[i].startswith("    --hash="):
            block.append(lines[i])
            i += 1
        via: set[str] = set()
        while i < len(lines) and lines[i].startswith("    #"):
            comment = lines[i].strip("# ").strip()
            comment = comment.removeprefix("via").strip()
            if comment:
                via.add(canonicalize_name(comment.split(" (")[0].split()[0]))
            i += 1
        requirement = line.rstrip("\\ ").strip()
        spec, _, marker = requirement.partition(";")
        name, sep, version = spec.strip().partition("==")
        assert sep, f"{path.name}: not pinned: {line!r}"
        hashes = frozenset(h.strip().rstrip("\\ ").removeprefix("--hash=") for h in block[1:])
        pins.append(
            Pin(
                canonicalize_name(name),
                version.strip(),
                marker.strip() or None,
                hashes,
                frozenset(via),
                "\n".join(block),
            )
        )
    return pins


def image_environment(machine: str = "x86_64", python: str = "3.11") -> dict[str, str]:
    """Marker values of the image: Linux, CPython ``python``."""
    env = dict(default_environment())
    env.update(
        python_version=python,
        python_full_version=f"{python}.9",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        platform_machine=machine,
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def versions(pins: Iterable[Pin], environment: Mapping[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pin in pins:
        if pin.applies(environment):
            out.setdefault(pin.name, set()).add(pin.version)
    return out


def lock_python_version(path: Path) -> str:
    """The ``--python-version`` the lock was compiled for (uv writes its command in the header)."""
    match = re.search(r"--python-version[ =](\d+\.\d+)", path.read_text(encoding="utf-8"))
    assert match, f"{path.name}: no --python-version in its header"
    return match.group(1)
