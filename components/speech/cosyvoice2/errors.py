"""The one error a CosyVoice2 checkpoint directory raises when its contents are wrong (files that exist but do
not fit: YAML that does not parse, a hyperparameter this backend cannot build, weights that do not match)."""

from __future__ import annotations

from components.errors import OmniError


class CheckpointError(OmniError, ValueError):
    """A CosyVoice2 checkpoint file is unusable; the message names the file, the key and the fix.

    A file that is missing altogether raises FileNotFoundError instead (see checkpoint.check_checkpoint_dir).
    """
