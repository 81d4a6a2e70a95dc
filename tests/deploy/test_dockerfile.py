"""The Dockerfile, its build context and its locks: the image is the official Airflow image at the version CI tests,
with what requirements/image.lock.txt pins and the provider's wheel, built offline, and nothing else. The emulators'
wheel (the mdca-emulator distribution) goes to the demo's emulator image only, never to the production image.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.support import (
    BUILD_REQUIREMENTS,
    CI_LOCK,
    DOCKERFILE,
    DOCKERIGNORE,
    IMAGE_LOCK,
    REPO,
    DockerIgnore,
    context_files,
    copies,
    dockerfile_stages,
    image_environment,
    lock_python_version,
    parse_lock,
    versions,
)

MACHINES = ("x86_64", "aarch64")  # the platforms apache/airflow is published for
TEST_AND_DEV_TOOLS = ("pytest", "pytest-xdist", "hypothesis", "mypy", "ruff", "check-jsonschema", "hatchling")
PROVIDER_WHEEL = "/opt/mdca/dist/airflow_provider_mdca-*.whl"
EMULATOR_WHEEL = "/opt/mdca/dist-emulator/mdca_emulator-*.whl"


def stages():
    return dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))


def stage(name: str):
    return next(s for s in stages() if s.name == name)


def pinned(path: Path, name: str) -> str:
    found = {pin.version for pin in parse_lock(path) if pin.name == name}
    assert len(found) == 1, f"{path.name} pins {name} {sorted(found)}"
    return found.pop()


def run_commands(stage) -> list[list[str]]:
    """The commands of a stage's RUN instructions, ``&&`` chains split."""
    out = []
    for keyword, args in stage.instructions:
        if keyword == "RUN":
            for part in args.split("&&"):
                words = shlex.split(part)
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words = words[1:]  # VAR=value prefixes
                out.append(words)
    return out


# -- the base image and the locks -----------------------------------------------------------------------------------


def test_the_base_image_is_the_official_airflow_image_at_the_locked_versions():
    all_stages = stages()
    names = {stage.name for stage in all_stages if stage.name}
    external = {stage.image for stage in all_stages if stage.image not in names}
    assert len(external) == 1, external
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", external.pop())
    assert match, "FROM must pin apache/airflow:<version>-python<X.Y>"
    airflow, python = match.groups()
    assert airflow == pinned(IMAGE_LOCK, "apache-airflow") == pinned(CI_LOCK, "apache-airflow")
    assert python == lock_python_version(IMAGE_LOCK)


@pytest.mark.parametrize("machine", MACHINES)
def test_the_image_lock_pins_what_ci_tested(machine):
    environment = image_environment(machine, lock_python_version(IMAGE_LOCK))
    image, ci = versions(parse_lock(IMAGE_LOCK), environment), versions(parse_lock(CI_LOCK), environment)
    assert "apache-airflow" in image and "msal" in image  # the parser sees the lock
    differ = {name: (image[name], ci[name]) for name in image.keys() & ci.keys() if image[name] != ci[name]}
    assert not differ, f"image.lock.txt and airflow3.lock.txt disagree (image, CI): {differ}"
    assert not image.keys() - ci.keys(), (
        f"only in the image's lock, so never tested: {sorted(image.keys() - ci.keys())}"
    )


def test_the_image_lock_has_no_test_or_dev_tools():
    names = {pin.name for pin in parse_lock(IMAGE_LOCK)}
    assert "pytest" in {pin.name for pin in parse_lock(CI_LOCK)}
    assert names.isdisjoint(canonicalize_name(tool) for tool in TEST_AND_DEV_TOOLS)
    assert all(pin.hashes for pin in parse_lock(IMAGE_LOCK)), "every line hashed (pip --require-hashes)"


def test_every_pip_install_is_hashed_and_resolves_nothing():
    commands = [
        cmd for stage in stages() for cmd in run_commands(stage) if cmd[:2] in (["pip", "install"], ["pip", "wheel"])
    ]
    assert len(commands) == 6
    for cmd in commands:
        assert "--no-deps" in cmd, cmd
        if "-r" in cmd:
            assert "--require-hashes" in cmd, cmd
        elif cmd[1] == "install":
            assert cmd[-1] in (PROVIDER_WHEEL, EMULATOR_WHEEL), "only the wheels built here, unhashed"
    wheels = [cmd for cmd in commands if cmd[1] == "wheel"]
    assert len(wheels) == 2
    assert all("--no-build-isolation" in cmd for cmd in wheels), "build isolation would fetch hatchling unpinned"


def test_the_runtime_install_is_the_image_lock_and_check_image_reads_it():
    runtime = stage("runtime")
    lock_copy = next(c for c in copies(runtime) if c.sources == ("requirements/image.lock.txt",))
    installs = [cmd for cmd in run_commands(runtime) if cmd[:2] == ["pip", "install"] and "-r" in cmd]
    assert [cmd[cmd.index("-r") + 1] for cmd in installs] == [lock_copy.dest]
    for name in ("runtime", "demo-emulator"):  # each image is checked against the lock
        check = next(cmd for cmd in run_commands(stage(name)) if "check-image" in cmd)
        assert check[check.index("--lock") + 1] == lock_copy.dest, name
    assert all("airflow3.lock.txt" not in src for stage in stages() for c in copies(stage) for src in c.sources)


def test_the_wheel_stage_installs_the_build_requirements_before_building():
    wheel = stage("wheel")
    dest = next(c.dest for c in copies(wheel) if c.sources == ("deploy/build-requirements.txt",))
    commands = run_commands(wheel)
    install = next(i for i, cmd in enumerate(commands) if cmd[:2] == ["pip", "install"])
    build = next(i for i, cmd in enumerate(commands) if cmd[:2] == ["pip", "wheel"])
    assert commands[install][commands[install].index("-r") + 1] == dest
    assert install < build
    assert not any(c.from_stage for c in copies(wheel))
    runtime = stage("runtime")
    assert [c.from_stage for c in copies(runtime) if c.from_stage] == ["wheel"], "only the wheel reaches the image"


def installed_wheels(name: str) -> list[str]:
    return [cmd[-1] for cmd in run_commands(stage(name)) if cmd[:2] == ["pip", "install"] and "-r" not in cmd]


def wheel_dirs_copied(name: str) -> list[str]:
    return [src for c in copies(stage(name)) if c.from_stage == "wheel" for src in c.sources]


def test_the_emulators_wheel_goes_to_the_demo_emulator_image_only():
    wheel = stage("wheel")
    built = {cmd[cmd.index("--wheel-dir") + 1]: cmd[-1] for cmd in run_commands(wheel) if cmd[:2] == ["pip", "wheel"]}
    assert built == {"/opt/mdca/dist": "/opt/mdca/src", "/opt/mdca/dist-emulator": "/opt/mdca/src/emulator"}
    # Production: the runtime stage as it is, the default target (the last stage), the provider's wheel alone.
    production = stages()[-1]
    assert (production.name, production.image, production.instructions) == ("production", "runtime", [])
    assert installed_wheels("runtime") == [PROVIDER_WHEEL]
    assert wheel_dirs_copied("runtime") == ["/opt/mdca/dist/"]
    runtime_check = next(cmd for cmd in run_commands(stage("runtime")) if "check-image" in cmd)
    assert runtime_check[runtime_check.index("--absent") + 1] == "mdca_emulator", "the build proves it is not there"
    # The demo's emulator image: the runtime image, plus the emulators' wheel, whose command line then imports.
    demo = stage("demo-emulator")
    assert demo.image == "runtime"
    assert installed_wheels("demo-emulator") == [EMULATOR_WHEEL]
    assert wheel_dirs_copied("demo-emulator") == ["/opt/mdca/dist-emulator/"]
    demo_check = next(cmd for cmd in run_commands(demo) if "check-image" in cmd)
    assert "mdca_emulator.__main__" in demo_check and "--absent" not in demo_check
    others = [s for s in stages() if s.name not in ("demo-emulator", "wheel")]
    assert not any("dist-emulator" in src for s in others for c in copies(s) for src in c.sources)


# -- the wheel's build requirements ---------------------------------------------------------------------------------


def build_closure(lock: list, environment: dict[str, str]) -> set[str]:
    """hatchling and everything it needs, from the lock's ``# via`` graph (who requires whom)."""
    needed, todo = set(), ["hatchling"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo.extend(pin.name for pin in lock if name in pin.via and pin.applies(environment))
    return needed


def test_the_build_requirements_are_hatchlings_closure_line_for_line_from_the_ci_lock():
    python = lock_python_version(IMAGE_LOCK)
    ci = parse_lock(CI_LOCK)
    build = parse_lock(BUILD_REQUIREMENTS)
    expected = {pin.name: pin for pin in ci if pin.name in build_closure(ci, image_environment(python=python))}
    assert {"hatchling", "packaging", "pathspec", "pluggy", "trove-classifiers"} <= expected.keys()
    assert "tomli" not in expected, "tomli is for Python < 3.11 only"
    paste = "\n".join(pin.text for pin in expected.values())
    assert {pin.name for pin in build} == expected.keys(), f"deploy/build-requirements.txt should hold:\n{paste}"
    for pin in build:
        want = expected[pin.name]
        assert (pin.version, pin.hashes, pin.marker) == (want.version, want.hashes, want.marker), (
            f"{pin.name} differs from airflow3.lock.txt; deploy/build-requirements.txt should hold:\n{paste}"
        )


def test_the_closure_follows_the_lock():
    # The graph is read from the lock: a package that only a test tool needs is not in hatchling's closure.
    closure = build_closure(parse_lock(CI_LOCK), image_environment())
    assert "iniconfig" not in closure and "pluggy" in closure


@pytest.mark.parametrize("project", ["pyproject.toml", "emulator/pyproject.toml"])
def test_the_build_backend_is_the_locked_hatchling(project):
    text = (REPO / project).read_text(encoding="utf-8")
    assert 'build-backend = "hatchling.build"' in text
    requires = re.search(r"(?m)^requires = \[(.*)\]", text).group(1)
    for requirement in re.findall(r'"([^"]+)"', requires):
        req = Requirement(requirement)
        assert req.name == "hatchling"
        assert pinned(BUILD_REQUIREMENTS, "hatchling") in req.specifier


# -- the build context ----------------------------------------------------------------------------------------------


def context_sources():
    return [src for stage in stages() for c in copies(stage) if not c.from_stage for src in c.sources]


def test_every_file_the_dockerfile_copies_is_in_the_build_context():
    ignore = DockerIgnore(DOCKERIGNORE.read_text(encoding="utf-8"))
    for source in context_sources():
        path = REPO / source
        on_disk = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in on_disk:
            relative = file.relative_to(REPO).as_posix()
            if "__pycache__" not in relative:  # bytecode: built in the image, never copied
                assert ignore.included(relative), f"COPY {source}: .dockerignore leaves {relative} out"
        assert context_files(REPO, source.rstrip("/"), ignore), f"COPY {source}: nothing of it is in the context"


def test_the_build_context_holds_nothing_the_dockerfile_does_not_copy():
    ignore = DockerIgnore(DOCKERIGNORE.read_text(encoding="utf-8"))
    sources = [source.rstrip("/") for source in context_sources()]
    for allowed in ignore.exceptions:
        assert any(allowed == s or allowed.startswith(f"{s}/") for s in sources), f"!{allowed} is never copied"
    for secret_or_bulky in (
        ".env",
        ".env.example",
        ".venv/bin/python",
        "tests/deploy/test_compose.py",
        "var/x",
        "requirements/airflow3.lock.txt",
        "airflow_provider_mdca/__pycache__/x.pyc",
        "node_modules/x/y.js",
        "dags/__pycache__/mdca_collector.cpython-311.pyc",
        "tests/harness/airflow_stack.py",
        "emulator/mdca_emulator/__pycache__/server.cpython-311.pyc",
    ):
        assert not ignore.included(secret_or_bulky), secret_or_bulky
    assert ignore.included("emulator/mdca_emulator/server.py") and ignore.included("emulator/pyproject.toml")


def test_the_dockerignore_reader_follows_dockers_rules():
    ignore = DockerIgnore("*\n!keep/\n**/*.log\n!keep/important.log\n")
    assert not ignore.included("other.txt") and not ignore.included("sub/deep/file")
    assert ignore.included("keep/a/b.py")
    assert not ignore.included("keep/a/debug.log")
    assert ignore.included("keep/important.log")


# -- the wheels, built from the build context as the wheel stage builds them -----------------------------------------


def wheel_metadata(wheel: Path) -> tuple[set[str], Any, str]:
    """The wheel's file names, its METADATA and its entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    return names, metadata, entry_points


def test_the_wheels_build_offline_from_the_context_and_the_image_lock_satisfies_them(tmp_path):
    ignore = DockerIgnore(DOCKERIGNORE.read_text(encoding="utf-8"))
    src = tmp_path / "src"
    for c in copies(stage("wheel")):
        for source in c.sources:
            if source.startswith("deploy/"):
                continue  # the build requirements, not the source tree
            for relative in context_files(REPO, source.rstrip("/"), ignore):
                target = src / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REPO / relative, target)
    hatchling = Path(sys.executable).parent / "hatchling"
    for project in (src, src / "emulator"):
        subprocess.run(
            [str(hatchling), "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
            cwd=project,
            check=True,
            capture_output=True,
            timeout=120,
        )
    (wheel,) = (tmp_path / "dist").glob("airflow_provider_mdca-*.whl")
    (emulator_wheel,) = (tmp_path / "dist").glob("mdca_emulator-*.whl")

    names, metadata, entry_points = wheel_metadata(wheel)
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "airflow_provider_mdca").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert not any(n.startswith(("tests/", "deploy/", "dags/", "emulator/", "mdca_emulator/")) for n in names)
    assert not any(n.startswith(("airflow_provider_mdca/emulator/", "airflow_provider_mdca/stack")) for n in names)
    assert "[apache_airflow_provider]" in entry_points and "airflow_provider_mdca:get_provider_info" in entry_points
    assert "mdca-emulator" not in entry_points and "mdca-collector" in entry_points

    emulator_names, emulator_metadata, emulator_entry_points = wheel_metadata(emulator_wheel)
    emulator_modules = {
        p.relative_to(REPO / "emulator").as_posix() for p in (REPO / "emulator" / "mdca_emulator").rglob("*.py")
    }
    assert emulator_modules <= emulator_names, f"missing from the wheel: {sorted(emulator_modules - emulator_names)}"
    assert not any(n.startswith("airflow_provider_mdca/") for n in emulator_names)
    assert "mdca-emulator = mdca_emulator.__main__:main" in emulator_entry_points

    # pip installs the wheels with --no-deps: each of their requirements must be in the image's lock, in range (the
    # emulators' also names the provider: its wheel, built beside it and installed first in the runtime stage).
    environment = image_environment(python=lock_python_version(IMAGE_LOCK))
    image = versions(parse_lock(IMAGE_LOCK), environment)
    image[canonicalize_name(metadata["Name"])] = {metadata["Version"]}
    for requirement in metadata.get_all("Requires-Dist") + emulator_metadata.get_all("Requires-Dist"):
        req = Requirement(requirement)
        if req.marker and not req.marker.evaluate({**environment, "extra": ""}):
            continue  # an extra (test, dev): not installed in the image
        name = canonicalize_name(req.name)
        assert name in image, f"{req} is not in image.lock.txt"
        assert all(version in req.specifier for version in image[name]), f"{req}: image.lock.txt has {image[name]}"
    assert "airflow-provider-mdca" in emulator_metadata.get_all("Requires-Dist")
    assert Marker("extra == 'test'").evaluate({**environment, "extra": "test"})  # extras are told apart
