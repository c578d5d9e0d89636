"""Config validation: every preset is valid; mistakes are one clear message naming the key."""

import subprocess

import pytest

from ncrepro.config import ConfigError, load_config, validate_config


@pytest.mark.parametrize("preset", [None, "presets/smoke.yaml", "presets/paper.yaml"])
def test_presets_are_valid(repo, preset):
    files = [repo / "config.yaml"] + ([repo / preset] if preset else [])
    validate_config(load_config(*files))


def test_unknown_key_is_named(repo):
    config = load_config(repo / "config.yaml")
    config["nc_limits"]["training"]["stepz"] = 5
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert "'stepz'" in message and "nc_limits.training" in message
    assert "steps" in message  # the allowed keys are listed


def test_wrong_type_is_named(repo):
    config = load_config(repo / "config.yaml")
    config["nc_limits"]["training"]["batch_size"] = "big"
    with pytest.raises(ConfigError, match="nc_limits.training.batch_size"):
        validate_config(config)


def test_undefined_dataset_and_missing_lr(repo):
    config = load_config(repo / "config.yaml")
    config["nc_limits"]["grid"]["datasets"] = ["digits", "cifar99"]
    with pytest.raises(ConfigError, match="cifar99"):
        validate_config(config)
    config = load_config(repo / "config.yaml")
    del config["nc_limits"]["lr"]["vgg11_bn"]
    with pytest.raises(ConfigError, match="no learning rate for arch 'vgg11_bn'"):
        validate_config(config)


def test_snakemake_reports_config_error_without_traceback(repo):
    result = subprocess.run(
        ["snakemake", "-n", "--cores", "1", "--config", "device=gpu"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid value for 'device'" in output
    assert "Traceback" not in output
