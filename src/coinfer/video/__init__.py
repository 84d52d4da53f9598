"""Frames and key frames: synthetic scenes from shipped images, video files (PyAV), SSIM
key-frame detection."""

from coinfer.video.files import video_frames, write_video
from coinfer.video.frames import SyntheticScene
from coinfer.video.keyframes import KeyFrameDetector, key_frame_weights

__all__ = ["KeyFrameDetector", "SyntheticScene", "key_frame_weights", "video_frames", "write_video"]
