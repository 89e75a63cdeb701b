"""Read CosyVoice's hyperpyyaml files (`cosyvoice.yaml`) as plain data, without importing or running anything.

The reference builds its models straight from the YAML with hyperpyyaml: `!new:pkg.Class` instantiates,
`!name:pkg.func` makes a partial, `!apply:` calls at load time, `!ref <key>` points at another key (and may
do arithmetic, `!ref <token_frame_rate> * <token_mel_ratio>`). That needs the `cosyvoice`, `matcha`,
`omegaconf` packages and executes whatever the file names. Here every tag becomes inert data instead:

    doc = load_hyperyaml(Path("ckpt/cosyvoice.yaml"))
    # Tagged(kind="new", target="cosyvoice.flow.flow.CausalMaskedDiffWithXvec", args={...})
    flow = doc.get("flow")
    flow.args["input_frame_rate"] # 25: `!ref` resolved on access

`!ref` is resolved lazily, only for the keys read, so parts of the file this backend never uses (the LLM,
the GAN discriminator, the data pipeline) cannot break loading.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.speech.cosyvoice2.errors import CheckpointError

# hyperpyyaml tags with a target after the colon (`!new:torch.nn.Linear`); all become Tagged, none run.
_TARGET_TAGS = ("new", "name", "apply", "module", "include")
_REF_PATTERN = re.compile(r"<([^<>]+)>")
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


@dataclass(frozen=True)
class Tagged:
    """A `!kind:target` node: what hyperpyyaml would build, kept as data. `args` is a dict, a list or None."""

    kind: str
    target: str
    args: Any


@dataclass(frozen=True)
class Ref:
    """An unresolved `!ref` / `!copy` expression, e.g. "<token_frame_rate> * <token_mel_ratio>"."""

    expression: str


class _Loader(yaml.SafeLoader):
    """SafeLoader plus hyperpyyaml's tags and YAML 1.2 floats (`1e-06` is a float there, a string in 1.1)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_target(kind: str):
    def construct(loader: _Loader, suffix: str, node: yaml.Node) -> Tagged:
        if isinstance(node, yaml.MappingNode):
            args = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            args = loader.construct_sequence(node, deep=True)
        else:
            args = loader.construct_scalar(node) or None
        return Tagged(kind, suffix, args)

    return construct


def _construct_ref(loader: _Loader, node: yaml.Node) -> Ref:
    return Ref(str(loader.construct_scalar(node)))


def _construct_tuple(loader: _Loader, node: yaml.Node) -> tuple:
    return tuple(loader.construct_sequence(node, deep=True))


for _kind in _TARGET_TAGS:
    _Loader.add_multi_constructor(f"!{_kind}:", _construct_target(_kind))
_Loader.add_constructor("!ref", _construct_ref)
_Loader.add_constructor("!copy", _construct_ref)  # a copy and a reference are the same thing for plain data
_Loader.add_constructor("!tuple", _construct_tuple)


class HyperYaml:
    """A parsed hyperpyyaml document; `get` returns a key's value with every `!ref` inside it resolved."""

    def __init__(self, root: dict[str, Any], source: str):
        self.root, self.source = root, source

    def __contains__(self, key: str) -> bool:
        return key in self.root

    def get(self, key: str) -> Any:
        """The top-level `key`, resolved; CheckpointError naming the key and the file when it is absent."""
        if key not in self.root:
            raise CheckpointError(
                f"{self.source} has no top-level key {key!r}; CosyVoice2's cosyvoice.yaml "
                f"defines it (keys present: {sorted(self.root)})"
            )
        return self._resolve(self.root[key], (key,))

    def _resolve(self, value: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(value, Ref):
            return self._evaluate(value.expression, stack)
        if isinstance(value, Tagged):
            return Tagged(value.kind, value.target, self._resolve(value.args, stack))
        if isinstance(value, dict):
            return {k: self._resolve(v, stack) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._resolve(v, stack) for v in value)
        return value

    def _lookup(self, path: str, stack: tuple[str, ...]) -> Any:
        # `<a[b][c]>` and `<a.b>` both walk into nested mappings, as hyperpyyaml allows.
        parts = [p for p in re.split(r"[\[\].]", path.strip()) if p]
        if not parts or parts[0] not in self.root:
            raise CheckpointError(
                f"{self.source}: `!ref <{path}>` (under {'.'.join(stack)}) points at a key "
                "that does not exist; define it or fix the reference"
            )
        if parts[0] in stack:
            raise CheckpointError(f"{self.source}: `!ref <{path}>` is circular ({' -> '.join(stack)})")
        value = self._resolve(self.root[parts[0]], (*stack, parts[0]))
        for part in parts[1:]:
            args = value.args if isinstance(value, Tagged) else value
            if not isinstance(args, dict) or part not in args:
                raise CheckpointError(f"{self.source}: `!ref <{path}>` has no {part!r} inside {parts[0]!r}")
            value = args[part]
        return value

    def _evaluate(self, expression: str, stack: tuple[str, ...]) -> Any:
        refs = _REF_PATTERN.findall(expression)
        if len(refs) == 1 and expression.strip() == f"<{refs[0]}>":
            return self._lookup(refs[0], stack)  # a plain reference keeps its type (dicts, lists, Tagged)
        values = {ref: self._lookup(ref, stack) for ref in refs}
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
            text = _REF_PATTERN.sub(lambda m: repr(values[m.group(1)]), expression)
            try:
                return _arithmetic(ast.parse(text, mode="eval").body)
            except (SyntaxError, ValueError):
                pass  # not arithmetic: fall through to string interpolation, as hyperpyyaml does
        return _REF_PATTERN.sub(lambda m: str(values[m.group(1)]), expression)


def _arithmetic(node: ast.AST) -> int | float:
    """Evaluate numbers and + - * / // % ** only; anything else is not arithmetic (ValueError)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _arithmetic(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _ARITHMETIC[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def load_hyperyaml(path: Path) -> HyperYaml:
    """Parse a hyperpyyaml file into a HyperYaml; CheckpointError naming the file for YAML that does not parse."""
    try:
        root = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as err:
        raise CheckpointError(
            f"{path} is not valid (hyperpyyaml) YAML: {err}. Re-download it with the "
            "checkpoint, or compare it with CosyVoice's examples/libritts/cosyvoice2/conf"
        ) from None
    if not isinstance(root, dict):
        raise CheckpointError(f"{path} must hold a YAML mapping at the top level, found {type(root).__name__}")
    return HyperYaml(root, str(path))
