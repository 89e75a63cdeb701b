"""Audio I/O shared by training, evaluation, serving and the CLI: WAV bytes <-> float32 mono at SAMPLE_RATE."""

from components.audio.io import AudioError, decode_wav, encode_wav, load_wav, save_wav

__all__ = ["AudioError", "decode_wav", "encode_wav", "load_wav", "save_wav"]
