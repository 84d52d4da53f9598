"""Frames and key frames: synthetic scenes from shipped images, SSIM key-frame detection."""

from coinfer.video.frames import SyntheticScene
from coinfer.video.keyframes import KeyFrameDetector

__all__ = ["KeyFrameDetector", "SyntheticScene"]
