"""A tiny dataset built once per session: 14 dialogues take about a second with espeak-ng."""
import pytest

from components.synthesis import SynthesisConfig, synthesize_dataset


@pytest.fixture(scope="session")
def tiny_config():
    return SynthesisConfig(n=14, seed=7)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_config):
    return synthesize_dataset(tiny_config, tmp_path_factory.mktemp("synthesis") / "tiny", progress=False)
