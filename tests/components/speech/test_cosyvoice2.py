"""components.speech.cosyvoice2 on a tiny checkpoint the tests write: the reference's YAML structure and tags,
tiny flow/HiFT weights saved as flow.pt/hift.pt, and tiny ONNX tokenizer/speaker models with the released
files' tensor layout. Nothing is downloaded; the real CosyVoice2-0.5B layout is checked by building it.
"""

from __future__ import annotations

import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from components.audio.io import save_wav
from components.contracts import SAMPLE_RATE
from components.speech.base import Token2Wav
from components.speech.cosyvoice2 import (
    REQUIRED_FILES,
    CheckpointError,
    CosyVoice2Token2Wav,
)
from components.speech.cosyvoice2.checkpoint import load_config
from components.speech.cosyvoice2.config import CosyVoice2Config
from components.speech.cosyvoice2.features import kaldi_fbank, whisper_log_mel
from components.speech.cosyvoice2.flow import CausalMaskedDiffWithXvec
from components.speech.cosyvoice2.hift import HiFTGenerator
from components.speech.cosyvoice2.hyperyaml import HyperYaml, load_hyperyaml

NUM_UNITS, UNIT_RATE = 6561, 25.0
SAMPLES_PER_UNIT = SAMPLE_RATE // 25  # 2 mel frames x 480 samples at 24 kHz = 960 -> 640 at 16 kHz

# CosyVoice2's cosyvoice.yaml (examples/libritts/cosyvoice2/conf/cosyvoice2.yaml) with tiny widths and depths.
# Everything the real file does is here: !apply seeds, an LLM section this backend must not touch, !ref
# arithmetic, an omegaconf.DictConfig, 1e-06 (a float in YAML 1.2), !name partials and lists of refs.
# The rates (25 Hz tokens, 2 mel frames each, HiFT 8*5*3 x hop 4 = 480 at 24 kHz) are the real ones.
TINY_YAML = """\
__set_seed1: !apply:random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]

sample_rate: 24000
llm_input_size: 896
spk_embed_dim: 192
qwen_pretrain_path: ''
token_frame_rate: 25
token_mel_ratio: 2

llm: !new:cosyvoice.llm.llm.Qwen2LM
    llm_input_size: !ref <llm_input_size>
    speech_token_size: 6561
    llm: !new:cosyvoice.llm.llm.Qwen2Encoder
        pretrain_path: !ref <qwen_pretrain_path>

flow: !new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec
    input_size: 32
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 6561
    input_frame_rate: !ref <token_frame_rate>
    only_mask_loss: True
    token_mel_ratio: !ref <token_mel_ratio>
    pre_lookahead_len: 3
    encoder: !new:cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder
        output_size: 32
        attention_heads: 2
        linear_units: 64
        num_blocks: 1
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: 32
        use_cnn_module: False
        macaron_style: False
        use_dynamic_chunk: True
    decoder: !new:cosyvoice.flow.flow_matching.CausalConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.CausalConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [32]
            dropout: 0.0
            attention_head_dim: 16
            n_blocks: 1
            num_mid_blocks: 1
            num_heads: 2
            act_fn: 'gelu'
            static_chunk_size: !ref <token_frame_rate> * <token_mel_ratio>
            num_decoding_left_chunks: 2

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: 16
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 5, 3]
    upsample_kernel_sizes: [16, 11, 7]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3, 7, 11]
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: [7, 7, 11]
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: 16

mel_spec_transform1: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1024
    sampling_rate: !ref <sample_rate>
    fmax: null
hifigan: !new:cosyvoice.hifigan.hifigan.HiFiGan
    generator: !ref <hift>
    mel_spec_transform: [
        !ref <mel_spec_transform1>
    ]

feat_extractor: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: 8000
    center: False
compute_fbank: !name:cosyvoice.dataset.processor.compute_fbank
    feat_extractor: !ref <feat_extractor>
data_pipeline: [
    !ref <compute_fbank>,
]
train_conf:
    optim_conf:
        lr: 1e-5
"""


class TinySpeechTokenizer(nn.Module):
    """feats (1, 128, T) + feats_length (1,) -> indices (1, T // 4), an FSQ-style code in [0, 3^8) = [0, 6561):
    the released tokenizer's interface (4 mel frames of 10 ms per 25 Hz token, 8 ternary digits per code)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv1d(128, 8, kernel_size=4, stride=4)
        self.register_buffer("digits", 3 ** torch.arange(8).view(1, 8, 1))

    def forward(self, feats: torch.Tensor, feats_length: torch.Tensor) -> torch.Tensor:
        valid = (torch.arange(feats.shape[2]).view(1, 1, -1) < feats_length.view(-1, 1, 1)).to(feats.dtype)
        levels = torch.round(torch.tanh(self.proj(feats * valid))) + 1  # (1, 8, T // 4) in {0, 1, 2}
        return (levels.long() * self.digits).sum(dim=1)


class TinyCampPlus(nn.Module):
    """fbank (1, T, 80) -> (1, 192) embedding: the released CAM++'s interface, mean-pooled linear features."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(80, 192)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats).mean(dim=1)


def tone(seconds: float, freq: float = 180.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.4 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * 3.1 * freq * t)
    return (wave * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write_checkpoint(directory: Path) -> Path:
    """A complete tiny CosyVoice2 checkpoint directory, written the way the real one is laid out."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cosyvoice.yaml").write_text(TINY_YAML)
    config = load_config(directory)
    torch.manual_seed(0)
    torch.save(CausalMaskedDiffWithXvec(config.flow).state_dict(), directory / "flow.pt")
    torch.save(HiFTGenerator(config.hift).state_dict(), directory / "hift.pt")
    with warnings.catch_warnings():  # the TorchScript exporter (dynamo=False) is deprecated, and what we need
        warnings.simplefilter("ignore", DeprecationWarning)
        export_onnx_models(directory)
    return directory


def export_onnx_models(directory: Path) -> None:
    """The two ONNX files with the released ones' inputs: our front end addresses them by position, as the
    reference does; the names are the released tokenizer's (feats, feats_length -> indices)."""
    feats = torch.randn(1, 128, 100)
    torch.onnx.export(
        TinySpeechTokenizer().eval(),
        (feats, torch.tensor([100], dtype=torch.int32)),
        str(directory / "speech_tokenizer_v2.onnx"),
        input_names=["feats", "feats_length"],
        output_names=["indices"],
        dynamic_axes={"feats": {2: "T"}, "indices": {1: "T4"}},
        dynamo=False,
    )
    torch.onnx.export(
        TinyCampPlus().eval(),
        (torch.randn(1, 100, 80),),
        str(directory / "campplus.onnx"),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {1: "T"}},
        dynamo=False,
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are all threading overhead: on a busy 2-core machine two OpenMP threads made each op ~50x
    slower than one. Restored afterwards so the rest of the suite keeps torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("cosyvoice2"))


@pytest.fixture(scope="module")
def vocoder(checkpoint) -> CosyVoice2Token2Wav:
    return CosyVoice2Token2Wav.from_pretrained(checkpoint, n_timesteps=4)


def units(count: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(0, NUM_UNITS, count).tolist()


# --- the Token2Wav contract ---------------------------------------------------------------------------------


def test_loads_as_a_token2wav_with_the_yaml_vocabulary_and_rate(vocoder):
    assert isinstance(vocoder, Token2Wav)
    assert vocoder.num_units == NUM_UNITS and vocoder.unit_rate == UNIT_RATE
    assert vocoder.samples_per_unit == SAMPLES_PER_UNIT


def test_synthesize_gives_finite_float32_16k_audio_of_the_units_length(vocoder):
    audio = vocoder.synthesize(units(20), emotion=torch.zeros(16), speaker="en-us+f3")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape == (20 * SAMPLES_PER_UNIT,)  # 20 units * 2 mel frames * 480 samples at 24 kHz, to 16 kHz
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0
    assert np.array_equal(audio, vocoder.synthesize(units(20)))  # fixed ODE noise and vocoder seed
    assert vocoder.synthesize([]).shape == (0,)


def test_stream_emits_per_chunk_policy_and_concatenates_to_the_utterance(vocoder):
    utterance = units(40, seed=1)
    consumed = []

    def arriving():  # 5 units at a time, recording how many had arrived when each audio chunk came out
        for start in range(0, len(utterance), 5):
            consumed.append(start + 5)
            yield utterance[start : start + 5]

    chunks, arrived_at = [], []
    for chunk in vocoder.stream(arriving()):
        chunks.append(chunk)
        arrived_at.append(consumed[-1])
    streamed, whole = np.concatenate(chunks), vocoder.synthesize(utterance)
    assert all(c.dtype == np.float32 and np.isfinite(c).all() for c in chunks)
    assert streamed.shape == whole.shape
    # The first chunk comes once 15 units are known, before the utterance is complete; chunks follow every 12.
    assert arrived_at[0] == 15 and len(chunks) == 4
    # Past the last cross-fade the final chunk is the whole-utterance synthesis itself.
    tail = 3 * SAMPLES_PER_UNIT
    np.testing.assert_array_equal(streamed[-tail:], whole[-tail:])


def test_units_outside_the_vocabulary_are_refused_by_position(vocoder):
    with pytest.raises(ValueError, match=r"unit 6561 at position 2 is outside \[0, 6561\)"):
        vocoder.synthesize([1, 2, 6561])
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        vocoder.synthesize([0.5, 1.5])


def test_extract_units_returns_25_hz_ints_in_the_vocabulary(vocoder):
    tokens = vocoder.extract_units(tone(1.0))
    assert len(tokens) == 25 and all(isinstance(t, int) and 0 <= t < NUM_UNITS for t in tokens)
    with pytest.raises(ValueError, match="at most 30 s"):
        vocoder.extract_units(np.zeros(31 * SAMPLE_RATE, dtype=np.float32))


def test_a_prompt_wav_becomes_the_zero_shot_prompt(checkpoint, tmp_path):
    prompt_wav = save_wav(tmp_path / "voice.wav", tone(1.3, freq=140.0))
    t2w = CosyVoice2Token2Wav.from_pretrained(checkpoint, prompt_wav=prompt_wav, n_timesteps=2)
    prompt = t2w.prompt
    assert prompt.tokens.shape == (1, 32)  # 1.3 s -> 32 tokens; its mel trimmed to 2 frames each
    assert prompt.feat.shape == (1, 64, 80) and prompt.embedding.shape == (1, 192)
    assert prompt.embedding.abs().sum() > 0
    audio = t2w.synthesize(units(10))
    assert audio.shape == (10 * SAMPLES_PER_UNIT,) and np.isfinite(audio).all()


def test_loading_never_opens_a_network_connection(checkpoint, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("CosyVoice2 loading tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert CosyVoice2Token2Wav.from_pretrained(checkpoint, n_timesteps=1).synthesize(units(3)).size


# --- the checkpoint contract --------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", list(REQUIRED_FILES))
def test_a_missing_file_is_named_with_what_it_is_and_where_to_get_it(checkpoint, tmp_path, missing):
    partial = tmp_path / "ckpt"
    shutil.copytree(checkpoint, partial)
    (partial / missing).unlink()
    with pytest.raises(FileNotFoundError) as err:
        CosyVoice2Token2Wav.from_pretrained(partial)
    message = str(err.value)
    assert missing in message and REQUIRED_FILES[missing] in message and "CosyVoice2-0.5B" in message
    assert [name for name in REQUIRED_FILES if name in message] == [missing]


def test_a_config_under_its_later_name_is_pointed_out(checkpoint, tmp_path):
    renamed = tmp_path / "ckpt"
    shutil.copytree(checkpoint, renamed)
    (renamed / "cosyvoice.yaml").rename(renamed / "cosyvoice2.yaml")
    with pytest.raises(FileNotFoundError, match="has cosyvoice2.yaml.*link it to cosyvoice.yaml"):
        CosyVoice2Token2Wav.from_pretrained(renamed)


def test_a_state_dict_with_a_wrong_key_is_refused_naming_the_key(checkpoint, tmp_path):
    broken = tmp_path / "ckpt"
    shutil.copytree(checkpoint, broken)
    state = torch.load(broken / "flow.pt", weights_only=True)
    state["encoder_projection.weight"] = state.pop("encoder_proj.weight")
    torch.save(state, broken / "flow.pt")
    with pytest.raises(CheckpointError, match=r"flow\.pt.*'encoder_proj\.weight'.*'encoder_projection\.weight'"):
        CosyVoice2Token2Wav.from_pretrained(broken)


def test_weights_of_a_differently_sized_model_are_refused_naming_the_file(checkpoint, tmp_path):
    broken = tmp_path / "ckpt"
    shutil.copytree(checkpoint, broken)
    state = torch.load(broken / "hift.pt", weights_only=True)
    state["m_source.l_linear.weight"] = torch.zeros(1, 5)
    torch.save(state, broken / "hift.pt")
    with pytest.raises(CheckpointError, match=r"hift\.pt does not fit.*m_source\.l_linear\.weight"):
        CosyVoice2Token2Wav.from_pretrained(broken)


def test_hift_weights_in_the_legacy_weight_norm_layout_and_with_a_generator_prefix_load(checkpoint, tmp_path):
    legacy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, legacy)
    state = torch.load(legacy / "hift.pt", weights_only=True)
    renamed = {
        "generator."
        + k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in state.items()
    }
    assert any(k.endswith("weight_g") for k in renamed)
    torch.save(renamed, legacy / "hift.pt")
    loaded = CosyVoice2Token2Wav.from_pretrained(legacy, n_timesteps=1).hift.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())


# --- cosyvoice.yaml -----------------------------------------------------------------------------------------


def tiny_doc(tmp_path: Path, text: str = TINY_YAML) -> HyperYaml:
    path = tmp_path / "cosyvoice.yaml"
    path.write_text(text)
    return load_hyperyaml(path)


def test_yaml_refs_arithmetic_and_floats_resolve_without_running_anything(tmp_path):
    doc = tiny_doc(tmp_path)
    config = CosyVoice2Config.from_yaml(doc)
    assert config.flow.estimator.static_chunk_size == 50  # `!ref <token_frame_rate> * <token_mel_ratio>`
    assert config.flow.decoder.sigma_min == 1e-06 and config.flow.spk_embed_dim == 192
    assert config.flow.estimator.channels == (32,) and config.hift.upsample_rates == (8, 5, 3)
    assert config.unit_rate == UNIT_RATE and config.samples_per_unit == 960
    assert doc.get("hifigan").args["generator"].target == "cosyvoice.hifigan.generator.HiFTGenerator"


@pytest.mark.parametrize(
    "old, new, match",
    [
        (
            "cosyvoice.flow.flow.CausalMaskedDiffWithXvec",
            "cosyvoice.flow.flow.MaskedDiffWithXvec",
            r"flow is !new:cosyvoice\.flow\.flow\.MaskedDiffWithXvec.*CosyVoice 1 and 3",
        ),
        ("use_cnn_module: False", "use_cnn_module: True", r"use_cnn_module=True is not built"),
        ("num_heads: 2", "num_heads: 2\n            heads: 2", r"flow\.decoder\.estimator has keys \['heads'\]"),
        ("vocab_size: 6561", "vocab_size: !ref <vocabulary>", r"!ref <vocabulary>.*does not exist"),
        ("hop_size: 480", "hop_size: 256", r"feat_extractor hop_size is 256 but must be 480"),
        ("\nhift: !new", "\nvocoder: !new", r"no top-level key 'hift'"),
    ],
)
def test_yaml_problems_are_named_with_the_key_and_the_fix(tmp_path, old, new, match):
    assert old in TINY_YAML
    with pytest.raises(CheckpointError, match=match):
        CosyVoice2Config.from_yaml(tiny_doc(tmp_path, TINY_YAML.replace(old, new, 1)))


# --- faithfulness to the released checkpoint's layout -------------------------------------------------------


def test_the_real_cosyvoice2_hift_has_the_released_parameter_layout(tmp_path):
    real = TINY_YAML.replace("base_channels: 16", "base_channels: 512").replace(
        "cond_channels: 16", "cond_channels: 512"
    )
    hift = HiFTGenerator(CosyVoice2Config.from_yaml(tiny_doc(tmp_path, real)).hift)
    state = hift.state_dict()
    # The released hift.pt: 328 tensors, 20,821,295 parameters, weight-normed convs.
    assert len(state) == 328 and sum(v.numel() for v in state.values()) == 20_821_295
    assert state["conv_pre.parametrizations.weight.original1"].shape == (512, 80, 7)
    assert state["f0_predictor.condnet.8.parametrizations.weight.original1"].shape == (512, 512, 3)


# --- features -----------------------------------------------------------------------------------------------


def test_feature_shapes_follow_whisper_and_kaldi_framing():
    wave = tone(1.0)
    mel = whisper_log_mel(wave)
    assert mel.shape == (128, 100) and torch.isfinite(mel).all() and mel.max() <= 1.5 + 1e-6
    fbank = kaldi_fbank(wave)
    assert fbank.shape == (1 + (SAMPLE_RATE - 400) // 160, 80) and torch.isfinite(fbank).all()
