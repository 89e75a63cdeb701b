"""Inference: user speech in, reply text + emotions + reply speech out. Shared by evaluation, Triton and CLI."""

from components.inference.device import instance_device
from components.inference.responder import EmotionOmniResponder, Reply

__all__ = ["EmotionOmniResponder", "Reply", "instance_device"]
