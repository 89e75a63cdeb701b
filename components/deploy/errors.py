"""The deploy's error types: refused before anything changed, or failed (and rolled back) after."""

from __future__ import annotations

from components.errors import OmniError


class DeployError(OmniError, RuntimeError):
    """A deploy could not start or finish; the message names the problem and the fix. Raised before any change
    (an unpublished version, a release that does not exist, a missing restricted-API key), nothing was changed."""


class VerificationFailed(DeployError):
    """The new version loaded but did not prove it serves: the smoke request or the metrics window failed. The
    message is the reason the deploy reports; the caller restores the previous version."""
