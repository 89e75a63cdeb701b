"""CosyVoice2-0.5B's token -> waveform path (flow matching + HiFT) loaded from a local checkpoint directory.

Re-implemented from the public reference (FunAudioLLM/CosyVoice) with its module and parameter names, so the
released `flow.pt` and `hift.pt` load with strict=True; the `cosyvoice`, `hyperpyyaml`, `matcha`, `diffusers`
and `torchaudio` packages are not needed. One concept per module:

    checkpoint.py    the directory contract (REQUIRED_FILES) and strict weight loading
    errors.py        CheckpointError: a checkpoint file that exists but does not fit
    hyperyaml.py     cosyvoice.yaml's hyperpyyaml tags read as inert data
    config.py        typed hyperparameters built from it
    conformer.py     the flow's UpsampleConformerEncoder
    flow_decoder.py  the flow's CausalConditionalDecoder (velocity estimator)
    flow.py          CausalMaskedDiffWithXvec + CausalConditionalCFM: tokens + prompt -> mel
    hift.py          HiFTGenerator: mel -> 24 kHz waveform
    features.py      Whisper log-mel, Kaldi fbank and the prompt mel, in torch
    frontend.py      onnxruntime speech tokenizer and CAM++ speaker encoder
    token2wav.py     CosyVoice2Token2Wav: the Token2Wav protocol (16 kHz out, streaming per ChunkPolicy)
"""

from components.speech.cosyvoice2.checkpoint import REQUIRED_FILES, check_checkpoint_dir
from components.speech.cosyvoice2.errors import CheckpointError
from components.speech.cosyvoice2.token2wav import CosyVoice2Token2Wav

__all__ = ["REQUIRED_FILES", "CheckpointError", "CosyVoice2Token2Wav", "check_checkpoint_dir"]
