"""Typed hyperparameters of a CosyVoice2 checkpoint, read from its `cosyvoice.yaml` (one source of truth).

Each dataclass mirrors the constructor of one reference class; field names are the reference's argument names
and defaults are the reference's defaults, so a key the YAML leaves out means what it means to CosyVoice.
A key the reference class does not accept is refused (it would mean a different model), and so is a value
this implementation does not build (e.g. `use_cnn_module: True`): the message names the key and the value.

    config = CosyVoice2Config.from_yaml(load_hyperyaml(Path("ckpt/cosyvoice.yaml")))
    config.flow.vocab_size, config.unit_rate, config.samples_per_unit   # 6561, 25.0, 960
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from components.speech.cosyvoice2.errors import CheckpointError
from components.speech.cosyvoice2.hyperyaml import HyperYaml, Tagged

# The reference classes this backend re-implements, by the dotted path the YAML names them with.
FLOW_CLASS = "cosyvoice.flow.flow.CausalMaskedDiffWithXvec"
ENCODER_CLASS = "cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder"
CFM_CLASS = "cosyvoice.flow.flow_matching.CausalConditionalCFM"
ESTIMATOR_CLASS = "cosyvoice.flow.decoder.CausalConditionalDecoder"
HIFT_CLASS = "cosyvoice.hifigan.generator.HiFTGenerator"
F0_CLASS = "cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor"
MEL_FUNCTION = "matcha.utils.audio.mel_spectrogram"
DICT_CONFIG_CLASS = "omegaconf.DictConfig"


@dataclass(frozen=True)
class EncoderConfig:
    """UpsampleConformerEncoder: tokens (25 Hz) -> conformer -> 2x upsample -> conformer (50 Hz)."""

    input_size: int
    output_size: int = 256
    attention_heads: int = 4
    linear_units: int = 2048
    num_blocks: int = 6
    dropout_rate: float = 0.1  # training only, like every dropout below
    positional_dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.0
    input_layer: str = "conv2d"  # only "linear" (CosyVoice2's) is built
    pos_enc_layer_type: str = "rel_pos"  # only "rel_pos_espnet"
    normalize_before: bool = True
    static_chunk_size: int = 0  # streaming attention chunks; inference here uses full context
    use_dynamic_chunk: bool = False  # training only
    use_dynamic_left_chunk: bool = False
    positionwise_conv_kernel_size: int = 1
    macaron_style: bool = True  # only False
    selfattention_layer_type: str = "rel_selfattn"
    activation_type: str = "swish"
    use_cnn_module: bool = True  # only False
    cnn_module_kernel: int = 15
    causal: bool = False
    cnn_module_norm: str = "batch_norm"
    key_bias: bool = True
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        _require(self, "input_layer", "linear")
        _require(self, "pos_enc_layer_type", "rel_pos_espnet")
        _require(self, "selfattention_layer_type", "rel_selfattn")
        _require(self, "macaron_style", False)
        _require(self, "use_cnn_module", False)
        _require(self, "activation_type", "swish")
        if self.output_size % self.attention_heads:
            raise CheckpointError(
                f"flow.encoder output_size={self.output_size} is not divisible by "
                f"attention_heads={self.attention_heads}"
            )


@dataclass(frozen=True)
class EstimatorConfig:
    """CausalConditionalDecoder: the U-Net that predicts the flow's velocity field."""

    in_channels: int
    out_channels: int
    channels: tuple[int, ...] = (256, 256)
    dropout: float = 0.05
    attention_head_dim: int = 64
    n_blocks: int = 1
    num_mid_blocks: int = 2
    num_heads: int = 4
    act_fn: str = "snake"  # only "gelu" (CosyVoice2's) is built
    static_chunk_size: int = 50
    num_decoding_left_chunks: int = 2

    def validate(self) -> None:
        _require(self, "act_fn", "gelu")
        if not self.channels:
            raise CheckpointError("flow.decoder.estimator channels is empty; CosyVoice2 uses [256]")


@dataclass(frozen=True)
class CFMConfig:
    """CausalConditionalCFM: Euler ODE solver with classifier-free guidance around the estimator."""

    in_channels: int
    n_spks: int = 1
    spk_emb_dim: int = 64
    sigma_min: float = 1e-6
    solver: str = "euler"
    t_scheduler: str = "cosine"
    training_cfg_rate: float = 0.2
    inference_cfg_rate: float = 0.7
    reg_loss_type: str = "l1"

    def validate(self) -> None:
        _require(self, "solver", "euler")
        if self.t_scheduler not in ("cosine", "linear"):
            raise CheckpointError(f"flow.decoder cfm_params t_scheduler={self.t_scheduler!r}: use 'cosine' or 'linear'")


@dataclass(frozen=True)
class FlowConfig:
    """CausalMaskedDiffWithXvec: speech tokens + speaker prompt -> 80-bin mel, token_mel_ratio frames a token."""

    encoder: EncoderConfig
    decoder: CFMConfig
    estimator: EstimatorConfig
    input_size: int = 512
    output_size: int = 80
    spk_embed_dim: int = 192
    output_type: str = "mel"
    vocab_size: int = 4096
    input_frame_rate: int = 50
    only_mask_loss: bool = True
    token_mel_ratio: int = 2
    pre_lookahead_len: int = 3

    def validate(self) -> None:
        self.encoder.validate()
        self.decoder.validate()
        self.estimator.validate()
        if self.encoder.input_size != self.input_size:
            raise CheckpointError(
                f"flow input_size={self.input_size} but flow.encoder input_size="
                f"{self.encoder.input_size}: the token embedding feeds the encoder, make them equal"
            )
        # The estimator's input is [x; mu; speaker; prompt condition], each output_size channels wide.
        if self.estimator.in_channels != 4 * self.output_size or self.estimator.out_channels != self.output_size:
            raise CheckpointError(
                f"flow.decoder.estimator in_channels={self.estimator.in_channels}, out_channels="
                f"{self.estimator.out_channels}: they must be 4 * and 1 * flow output_size "
                f"({self.output_size})"
            )
        if self.token_mel_ratio != 2:
            raise CheckpointError(
                f"flow token_mel_ratio={self.token_mel_ratio}: UpsampleConformerEncoder "
                "upsamples exactly 2x, so CosyVoice2 needs 2"
            )


@dataclass(frozen=True)
class F0PredictorConfig:
    num_class: int = 1
    in_channels: int = 80
    cond_channels: int = 512


@dataclass(frozen=True)
class HiFTConfig:
    """HiFTGenerator: neural source filter + iSTFT vocoder, mel -> waveform at sampling_rate."""

    f0_predictor: F0PredictorConfig
    in_channels: int = 80
    base_channels: int = 512
    nb_harmonics: int = 8
    sampling_rate: int = 22050
    nsf_alpha: float = 0.1
    nsf_sigma: float = 0.003
    nsf_voiced_threshold: float = 10
    upsample_rates: tuple[int, ...] = (8, 8)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16)
    istft_params: dict[str, int] = field(default_factory=lambda: {"n_fft": 16, "hop_len": 4})
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    source_resblock_kernel_sizes: tuple[int, ...] = (7, 11)
    source_resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    audio_limit: float = 0.99

    @property
    def hop_length(self) -> int:
        """Output samples per input mel frame."""
        return math.prod(self.upsample_rates) * self.istft_params["hop_len"]

    def validate(self) -> None:
        if set(self.istft_params) != {"n_fft", "hop_len"}:
            raise CheckpointError(f"hift istft_params={self.istft_params}: give exactly n_fft and hop_len")
        for name in ("upsample_kernel_sizes", "source_resblock_kernel_sizes", "source_resblock_dilation_sizes"):
            if len(getattr(self, name)) != len(self.upsample_rates):
                raise CheckpointError(
                    f"hift {name} has {len(getattr(self, name))} entries but upsample_rates has "
                    f"{len(self.upsample_rates)}: give one per upsampling stage"
                )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise CheckpointError("hift resblock_kernel_sizes and resblock_dilation_sizes differ in length")


@dataclass(frozen=True)
class MelFeatConfig:
    """The prompt's mel (matcha's mel_spectrogram, `feat_extractor` in the YAML): must match what flow predicts."""

    n_fft: int
    num_mels: int
    sampling_rate: int
    hop_size: int
    win_size: int
    fmin: float = 0.0
    fmax: float | None = None
    center: bool = False


@dataclass(frozen=True)
class CosyVoice2Config:
    """Everything the token -> waveform path needs from `cosyvoice.yaml`."""

    sample_rate: int
    flow: FlowConfig
    hift: HiFTConfig
    feat_extractor: MelFeatConfig

    @property
    def unit_rate(self) -> float:
        """Speech tokens per second (25 for CosyVoice2)."""
        return float(self.flow.input_frame_rate)

    @property
    def samples_per_unit(self) -> int:
        """Native-rate output samples per speech token: token_mel_ratio mel frames x HiFT hop (2 x 480)."""
        return self.flow.token_mel_ratio * self.hift.hop_length

    def validate(self) -> None:
        self.flow.validate()
        self.hift.validate()
        mel = self.feat_extractor
        checks = (
            ("hift sampling_rate", self.hift.sampling_rate, self.sample_rate),
            ("feat_extractor sampling_rate", mel.sampling_rate, self.sample_rate),
            ("feat_extractor num_mels", mel.num_mels, self.flow.output_size),
            ("hift in_channels", self.hift.in_channels, self.flow.output_size),
            ("feat_extractor hop_size", mel.hop_size, self.hift.hop_length),
            (
                "tokens per second x samples per token",
                self.flow.input_frame_rate * self.samples_per_unit,
                self.sample_rate,
            ),
        )
        for name, value, expected in checks:
            if value != expected:
                raise CheckpointError(
                    f"cosyvoice.yaml: {name} is {value} but must be {expected} for the flow's mel, "
                    "the prompt's mel and HiFT's output to line up; fix the YAML"
                )

    @classmethod
    def from_yaml(cls, doc: HyperYaml) -> CosyVoice2Config:
        """Build and validate from a parsed cosyvoice.yaml; CheckpointError naming the key on any mismatch."""
        flow_node = _tagged(doc.get("flow"), "flow", FLOW_CLASS)
        flow_args = dict(flow_node.args or {})
        encoder = _build(
            EncoderConfig, _tagged(flow_args.pop("encoder", None), "flow.encoder", ENCODER_CLASS), "flow.encoder"
        )
        cfm_node = _tagged(flow_args.pop("decoder", None), "flow.decoder", CFM_CLASS)
        cfm_args = dict(cfm_node.args or {})
        estimator = _build(
            EstimatorConfig,
            _tagged(cfm_args.pop("estimator", None), "flow.decoder.estimator", ESTIMATOR_CLASS),
            "flow.decoder.estimator",
        )
        cfm_params = _unwrap_dict_config(cfm_args.pop("cfm_params", None), "flow.decoder.cfm_params")
        decoder = _build(CFMConfig, {**cfm_args, **cfm_params}, "flow.decoder")
        flow_args.pop("decoder_conf", None)  # the reference keeps it only as documentation of defaults
        flow_args.pop("mel_feat_conf", None)
        flow = _build(FlowConfig, {**flow_args, "encoder": encoder, "decoder": decoder, "estimator": estimator}, "flow")

        hift_args = dict(_tagged(doc.get("hift"), "hift", HIFT_CLASS).args or {})
        f0 = _build(
            F0PredictorConfig,
            _tagged(hift_args.pop("f0_predictor", None), "hift.f0_predictor", F0_CLASS),
            "hift.f0_predictor",
        )
        hift = _build(HiFTConfig, {**hift_args, "f0_predictor": f0}, "hift")

        mel = _build(
            MelFeatConfig,
            _tagged(doc.get("feat_extractor"), "feat_extractor", MEL_FUNCTION, kind="name"),
            "feat_extractor",
        )
        sample_rate = doc.get("sample_rate")
        if not isinstance(sample_rate, int):
            raise CheckpointError(f"cosyvoice.yaml sample_rate={sample_rate!r}: give the output rate in Hz (24000)")
        config = cls(sample_rate=sample_rate, flow=flow, hift=hift, feat_extractor=mel)
        config.validate()
        return config


def _require(config: Any, name: str, supported: Any) -> None:
    value = getattr(config, name)
    if value != supported:
        raise CheckpointError(
            f"{type(config).__name__}.{name}={value!r} is not built by this backend, which "
            f"implements CosyVoice2-0.5B ({name}={supported!r}); use a CosyVoice2 checkpoint"
        )


def _tagged(node: Any, where: str, expected: str, kind: str = "new") -> Tagged:
    if node is None:
        raise CheckpointError(f"cosyvoice.yaml has no {where}; CosyVoice2 defines it as `!{kind}:{expected}`")
    if not isinstance(node, Tagged) or node.kind != kind or node.target != expected:
        found = f"!{node.kind}:{node.target}" if isinstance(node, Tagged) else repr(node)
        raise CheckpointError(
            f"cosyvoice.yaml {where} is {found}, but this backend builds only `!{kind}:{expected}` "
            "(CosyVoice2-0.5B); CosyVoice 1 and 3 checkpoints need a different backend"
        )
    return node


def _unwrap_dict_config(node: Any, where: str) -> dict[str, Any]:
    # The reference wraps cfm_params in `!new:omegaconf.DictConfig {content: {...}}`; a plain mapping is fine too.
    if isinstance(node, Tagged) and node.target == DICT_CONFIG_CLASS:
        node = (node.args or {}).get("content")
    if not isinstance(node, dict):
        raise CheckpointError(
            f"cosyvoice.yaml {where} must be a mapping (or an omegaconf.DictConfig with `content:`), found {node!r}"
        )
    return node


def _build(cls: type, args: Any, where: str) -> Any:
    """cls(**args) with the YAML's lists turned into tuples; unknown or missing keys named in the error."""
    if isinstance(args, Tagged):
        args = args.args
    args = dict(args or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - names)
    if unknown:
        raise CheckpointError(
            f"cosyvoice.yaml {where} has keys {unknown} that the reference class does not take; "
            f"remove them (accepted: {sorted(names)})"
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in args]
    if missing:
        raise CheckpointError(f"cosyvoice.yaml {where} lacks required keys {missing}; add them")
    return cls(**{k: _freeze(v) for k, v in args.items()})


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
