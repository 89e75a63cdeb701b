"""A tiny dataset built once per session: 18 clean dialogues (no channel effects, no filters) take about 3 s."""

import pytest

from components.synthesis import SynthesisConfig, synthesize_dataset


@pytest.fixture(scope="session")
def tiny_config():
    return SynthesisConfig(n=18, seed=7, channels=None, filters=None)  # filters: test_filters.py, test_card_plots.py


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_config):
    return synthesize_dataset(tiny_config, tmp_path_factory.mktemp("synthesis") / "tiny", progress=False)
