"""Packaging files agree with each other: what setup_env.sh / environment.yml install is what pyproject declares,
pinned by constraints-cpu.txt; CITATION.cff and LICENSE match pyproject."""
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rerank_lib.paths import PROJECT_ROOT


def _pins() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "constraints-cpu.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_declared_requirement_is_pinned_within_its_range():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    nodeps = [line for line in (PROJECT_ROOT / "requirements-nodeps.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    pins = _pins()
    assert "torch" not in pins and "rerank-repro" not in pins  # torch comes from RERANK_TORCH_SPEC
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"] + nodeps:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, f"{spec} is not pinned in constraints-cpu.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"pin {pins[name]} outside {spec}"
    assert {"jupyterlab", "ipywidgets"} <= {canonicalize_name(Requirement(s).name) for s in project["dependencies"]}


def test_license_citation_and_environment_agree_with_pyproject():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    license_text = (PROJECT_ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in license_text
    assert "Copyright 2026 the rerank-repro authors" in license_text
    citation = yaml.safe_load((PROJECT_ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "Apache-2.0"
    assert citation["version"] == project["version"]
    assert citation["authors"] == [{"name": "rerank-repro contributors"}]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints-cpu.txt" in pip_lines and "-e .[dev]" in pip_lines


def test_gpu_extra_installs_without_cuda_and_leaves_flash_attn_out():
    """`pip install -e .[gpu]` must work on any machine: deepspeed (ops built on first use) and bitsandbytes
    (TrainConfig(optimizer="adamw_8bit")) install without CUDA; flash-attn compiles against CUDA and the installed
    torch (--no-build-isolation), so it has its own install line in the README instead of an extra."""
    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {canonicalize_name(Requirement(s).name) for s in extras["gpu"]} == {"deepspeed", "bitsandbytes"}
    assert not any(canonicalize_name(Requirement(s).name) == "flash-attn" for specs in extras.values() for s in specs)
    assert 'pip install "flash-attn>=2.6" --no-build-isolation' in (PROJECT_ROOT / "README.md").read_text()
