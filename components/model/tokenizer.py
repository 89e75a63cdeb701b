"""An offline tokenizer: byte-level BPE trained in milliseconds on the synthesized text.

Special tokens follow Qwen2's chat template names, so a pretrained Qwen tokenizer.json loaded from a local
path drops in with the same prompt layout: "<|im_start|>user\\n" [audio] "<|im_end|>\\n<|im_start|>assistant\\n".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from components.errors import ConfigError, InputNotFoundError
from components.model.configuration import EmotionOmniThinkerConfig

PAD_TOKEN = "<|endoftext|>"  # Qwen2 pads with <|endoftext|>
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # ends every turn; the generation stop token
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]
PROMPT_PREFIX = f"{IM_START}user\n"
PROMPT_SUFFIX = f"{IM_END}\n{IM_START}assistant\n"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Tokenizer:
    """Train a byte-level BPE on `texts`; byte fallback means any string still encodes."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return tokenizer


def load_tokenizer(path: Path) -> Tokenizer:
    """Load a tokenizer.json (ours or a pretrained Qwen2 one) from a local path."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(
            f"tokenizer file {path} does not exist: export the model again or pass the "
            "directory that holds tokenizer.json"
        )
    tokenizer = Tokenizer.from_file(str(path))
    missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
    if missing:
        raise ConfigError(
            f"tokenizer {path} lacks the chat tokens {missing}; Emotion Omni needs Qwen2's {SPECIAL_TOKENS}"
        )
    return tokenizer


def apply_tokenizer(config: EmotionOmniThinkerConfig, tokenizer: Tokenizer) -> EmotionOmniThinkerConfig:
    """Fill the config's vocabulary size and chat-template ids from `tokenizer` (in place; returned)."""
    config.vocab_size = tokenizer.get_vocab_size()
    config.prompt_prefix_ids = tokenizer.encode(PROMPT_PREFIX).ids
    config.prompt_suffix_ids = tokenizer.encode(PROMPT_SUFFIX).ids
    config.eos_token_id = tokenizer.token_to_id(IM_END)
    config.pad_token_id = tokenizer.token_to_id(PAD_TOKEN)
    return config


def encode_response(tokenizer: Tokenizer, text: str, eos_token_id: int) -> list[int]:
    """Token ids of an assistant reply, closed by <|im_end|> so the model learns where to stop."""
    return tokenizer.encode(text).ids + [eos_token_id]
