"""One source for every default: the CLI quotes the config dataclasses' fields and, for flags left unset, leaves the
pipeline's parameters (themselves the dataclasses' fields, test_pipeline_graph.py) at their defaults."""

from __future__ import annotations

import argparse
import json

import pytest

from components.evaluation.probe import ProbeConfig
from components.registry.config import RegistryConfig
from components.speech.config import EmotionOmniToken2WavConfig
from components.synthesis.config import SynthesisConfig
from components.training.config import SpeechTrainConfig, TrainConfig
from omni import cli


def command_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for every command and subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_parsers(sub, (*path, name))


def test_every_quoted_default_resolves_and_renders():
    quoted = 0
    for path, parser in command_parsers(cli.build_parser()):
        text = "".join(parser.format_help().split())  # argparse wraps lines, at spaces and after hyphens
        assert "{}" not in text, path
        for action in parser._actions:
            if isinstance(action.help, cli.DefaultHelp):
                quoted += 1
                for field in action.help.fields:
                    assert "".join(f"{cli.config_default(field)}".split()) in text, (path, action.dest, field)
    # demo, data synthesize, data probe, train, speech units, bench train, lineage, the pipeline's cluster settings
    assert quoted >= 20


@pytest.mark.parametrize(
    "command, expected",
    [
        (
            ["demo"],
            [
                f"(default {SynthesisConfig.n})",
                f"(default {TrainConfig.epochs})",
                f"(default {SpeechTrainConfig.epochs})",
            ],
        ),
        (
            ["data", "synthesize"],
            [f"(default {SynthesisConfig.test_fraction})", f"(default {SynthesisConfig.shard_size})"],
        ),
        (["data", "probe"], [f"stage 1's ({ProbeConfig.epochs})"]),
        (["train"], [f"else {TrainConfig.epochs} (stage 2: {SpeechTrainConfig.epochs})"]),
        (["speech", "units"], [f"k-means K (default {EmotionOmniToken2WavConfig.num_units})"]),
        (["lineage"], [f"(default {RegistryConfig.model_name})"]),
    ],
)
def test_help_quotes_the_dataclass_defaults(command, expected, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for phrase in expected:
        assert phrase in text


def test_demo_passes_only_the_flags_given(monkeypatch, tmp_path):
    """The rest stay at the pipeline's defaults, so the demo cannot drift from a compiled run."""
    import pipelines.local_run

    seen = {}

    def capture(data_dir, **arguments):
        seen.update(arguments)
        raise KeyboardInterrupt  # stop before the summary: only the arguments matter here

    monkeypatch.setattr(pipelines.local_run, "run_local", capture)
    args = cli.build_parser().parse_args(["demo", "--data-dir", str(tmp_path), "--epochs", "3", "--max-steps", "0"])
    with pytest.raises(KeyboardInterrupt):
        args.func(args)
    # The demo's last step deploys into <data-dir>/serving; everything else in deploy_json keeps DeployConfig's.
    serving = json.dumps({"repository": str(tmp_path.resolve() / "serving")})
    assert seen == {"epochs": 3, "max_steps": 0, "deploy_target": "local", "deploy_json": serving}
    seen.clear()
    args = cli.build_parser().parse_args(["demo", "--data-dir", str(tmp_path), "--no-deploy"])
    with pytest.raises(KeyboardInterrupt):
        args.func(args)
    assert seen == {}
