"""The conda environment for --sdm conda mirrors uv.lock; every rule uses it."""

import re
import tomllib

import yaml


def test_conda_pins_match_lock(repo):
    lock = tomllib.loads((repo / "uv.lock").read_text())
    locked = {}
    for package in lock["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    env = yaml.safe_load((repo / "envs/ncrepro.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert len(pip) >= 10
    for line in pip:
        name, version = line.split("==")
        assert version in locked[name], f"{name}=={version} not in uv.lock ({locked.get(name)})"


def test_every_rule_has_conda_and_log(repo):
    for path in (repo / "workflow/rules").rglob("*.smk"):
        text = path.read_text()
        rules = re.findall(r"^rule (\w+):", text, flags=re.M)
        blocks = re.split(r"^rule \w+:", text, flags=re.M)[1:]
        for name, block in zip(rules, blocks, strict=True):
            assert "conda:" in block, f"rule {name} in {path.name} has no conda:"
            assert "log:" in block, f"rule {name} in {path.name} has no log:"
