"""Exact LSE-D / LSE-C with SyncNet weights from a local file.

SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", 2016)
embeds 0.2 s of speech (13 MFCCs x 20 frames at 100 Hz) and the 5 video frames
of the same 0.2 s (224 x 224 face crops) into one 1024-d space where in-sync
pairs are close. The network and the scoring follow the public
``syncnet_python`` (``SyncNetModel.S``, ``SyncNetInstance.evaluate``), whose
``syncnet_v2.model`` state dict loads here unchanged, so the scores are the
papers' LSE-D / LSE-C when that file is given:

* per video frame ``i``, the distance of its lip embedding to the audio
  embedding of frame ``i + k`` for every offset ``k`` in ±15 (audio embeddings
  zero-padded at the clip's ends, as ``calc_pdist`` does);
* the mean over frames gives one distance per offset; LSE-D is its minimum,
  LSE-C is its median minus that minimum, and the best offset is where it is.

Inputs as ``syncnet_python`` feeds them: 25 fps video, 16 kHz audio at 16-bit
scale, face crops of its ``crop_video`` (box half-size ``s`` median-filtered
over 13 frames; rows ``-s .. +1.8 s`` and columns ``±1.4 s`` around the box
centre, grey-padded, resized to 224), BGR channel order as OpenCV reads them.

Shapes: ``b`` batch, ``n`` video frames, ``w`` windows (``n - 5``), ``m`` MFCC frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dubops.errors import InputError
from dubops.sample_rates import ANALYSIS_SAMPLE_RATE

FPS = 25
SAMPLE_RATE = ANALYSIS_SAMPLE_RATE
CROP_SIZE = 224
WINDOW_FRAMES = 5  # video frames per embedding (0.2 s)
MFCC_PER_FRAME = 4  # 100 Hz MFCCs per 25 fps frame
MFCC_WINDOW = 20  # MFCC frames per embedding (0.2 s)
MAX_OFFSET = 15  # ``--vshift`` of syncnet_python
EMBED_DIM = 1024
_CROP_SCALE = 0.4  # ``--crop_scale``: margin around the face box
_BOX_SMOOTHING = 13  # median filter length over frames of the face box
_PAD_GREY = 110


def _conv_bn_relu(conv: nn.Module, channels: int, batch_norm: type[nn.Module]) -> list[nn.Module]:
    return [conv, batch_norm(channels), nn.ReLU(inplace=True)]


def _head(dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, dim)
    )


class SyncNet(nn.Module):
    """The two SyncNet streams; module names match ``syncnet_v2.model``'s keys.

    ``netcnnaud`` + ``netfcaud``: ``(b, 1, 13, 20)`` MFCC window -> ``(b, 1024)``.
    ``netcnnlip`` + ``netfclip``: ``(b, 3, 5, 224, 224)`` BGR crops, 0..255 -> ``(b, 1024)``.
    """

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        bn2, bn3 = nn.BatchNorm2d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu(nn.Conv2d(1, 64, 3, padding=1), 64, bn2),
            nn.MaxPool2d(1, stride=1),
            *_conv_bn_relu(nn.Conv2d(64, 192, 3, padding=1), 192, bn2),
            nn.MaxPool2d(3, stride=(1, 2)),
            *_conv_bn_relu(nn.Conv2d(192, 384, 3, padding=1), 384, bn2),
            *_conv_bn_relu(nn.Conv2d(384, 256, 3, padding=1), 256, bn2),
            *_conv_bn_relu(nn.Conv2d(256, 256, 3, padding=1), 256, bn2),
            nn.MaxPool2d(3, stride=2),
            *_conv_bn_relu(nn.Conv2d(256, 512, (5, 4)), 512, bn2),
        )  # (b, 1, 13, 20) -> (b, 512, 1, 1)
        self.netfcaud = _head(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, bn3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), 256, bn3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(nn.Conv3d(256, 512, (1, 6, 6)), 512, bn3),
        )  # (b, 3, 5, 224, 224) -> (b, 512, 1, 1, 1)
        self.netfclip = _head(embed_dim)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(b, 1, 13, 20)`` -> ``(b, d)``."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_lips(self, crops: torch.Tensor) -> torch.Tensor:
        """``(b, 3, 5, 224, 224)`` -> ``(b, d)``."""
        return self.netfclip(self.netcnnlip(crops).flatten(1))


def load_syncnet(path: str | Path) -> SyncNet:
    """SyncNet in eval mode from a local state dict (``syncnet_v2.model`` or our own save).

    Loads with ``weights_only=True`` and ``strict=True``. Files saved before
    PyTorch 0.4.1 have no ``num_batches_tracked`` buffers (unused in eval mode):
    those alone are filled in.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no SyncNet weights at {path}; pass the syncnet_v2.model file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a non-checkpoint file
        raise InputError(f"{path} is not a loadable SyncNet state dict: {exc}") from None
    if not isinstance(state, dict):
        raise InputError(f"{path} holds a {type(state).__name__}, not a SyncNet state dict")
    model = SyncNet()
    for name, buffer in model.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.zeros_like(buffer)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path} does not match the SyncNet architecture: {exc}") from None
    return model.eval()


def mfcc_frames(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(13, m)`` MFCCs at 100 Hz exactly as ``syncnet_python`` computes them.

    ``python_speech_features.mfcc`` defaults on 16 kHz audio at 16-bit scale (it
    reads the wav as int16): the weights were trained on that scale.
    """
    from python_speech_features import mfcc

    from dubops.audio import resample

    wave = resample(np.asarray(wave, dtype=np.float32), sample_rate, SAMPLE_RATE)
    pcm = np.clip(wave, -1.0, 1.0) * 32767.0
    return mfcc(pcm.astype(np.float64), SAMPLE_RATE).T


def crop_faces(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``syncnet_python``'s face crops: uint8 ``(n, 224, 224, 3)`` BGR.

    Args:
        frames: uint8 ``(n, h, w, 3)`` RGB.
        boxes: ``(n, 4)`` face box ``(x0, y0, x1, y1)`` per frame, pixels.
    """
    import cv2
    from scipy.signal import medfilt

    frames, boxes = np.asarray(frames), np.asarray(boxes, dtype=np.float64)
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} face boxes")
    kernel = min(_BOX_SMOOTHING, len(boxes) - 1 + len(boxes) % 2)  # odd, at most n
    half = medfilt(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2, kernel)
    cx = medfilt((boxes[:, 0] + boxes[:, 2]) / 2, kernel)
    cy = medfilt((boxes[:, 1] + boxes[:, 3]) / 2, kernel)
    out = np.empty((len(frames), CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        s = half[i]
        pad = int(s * (1 + 2 * _CROP_SCALE))
        padded = np.pad(
            frame[..., ::-1], ((pad, pad), (pad, pad), (0, 0)), constant_values=_PAD_GREY
        )
        y, x = cy[i] + pad, cx[i] + pad
        face = padded[
            int(y - s) : int(y + s * (1 + 2 * _CROP_SCALE)),
            int(x - s * (1 + _CROP_SCALE)) : int(x + s * (1 + _CROP_SCALE)),
        ]
        out[i] = cv2.resize(np.ascontiguousarray(face), (CROP_SIZE, CROP_SIZE))
    return out


@torch.inference_mode()
def embed_lip_windows(model: SyncNet, crops: np.ndarray, batch: int = 20) -> np.ndarray:
    """Lip embedding of every 5-frame window ``i .. i + 4``: ``(n - 4, d)`` float32.

    ``crops``: uint8 ``(n, 224, 224, 3)`` BGR from :func:`crop_faces`.
    """
    if len(crops) < WINDOW_FRAMES + 1:
        raise ValueError(f"SyncNet needs at least {WINDOW_FRAMES + 1} frames, got {len(crops)}")
    video = torch.from_numpy(np.asarray(crops)).permute(3, 0, 1, 2).float()  # (3, n, h, w)
    starts = range(len(crops) - WINDOW_FRAMES + 1)
    out = []
    for first in range(0, len(starts), batch):
        chunk = starts[first : first + batch]
        windows = torch.stack([video[:, i : i + WINDOW_FRAMES] for i in chunk])  # (b, 3, 5, h, w)
        out.append(model.embed_lips(windows))
    return torch.cat(out).numpy()


@torch.inference_mode()
def embed_audio_windows(
    model: SyncNet, mfcc: np.ndarray, count: int, batch: int = 20
) -> np.ndarray:
    """Audio embedding of the MFCC window of video frames ``0 .. count - 1``: ``(count, d)``."""
    needed = (count - 1) * MFCC_PER_FRAME + MFCC_WINDOW
    if mfcc.shape[1] < needed:
        raise ValueError(f"{count} windows need {needed} MFCC frames, got {mfcc.shape[1]}")
    features = torch.from_numpy(np.asarray(mfcc, dtype=np.float32))  # (13, m)
    out = []
    for first in range(0, count, batch):
        chunk = range(first, min(count, first + batch))
        windows = torch.stack(
            [
                features[None, :, i * MFCC_PER_FRAME : i * MFCC_PER_FRAME + MFCC_WINDOW]
                for i in chunk
            ]
        )  # (b, 1, 13, 20)
        out.append(model.embed_audio(windows))
    return torch.cat(out).numpy()


def window_count(num_frames: int, num_samples: int) -> int:
    """Windows ``syncnet_python`` scores: the shorter stream's frames minus 5."""
    count = min(num_frames, num_samples // (SAMPLE_RATE // FPS)) - WINDOW_FRAMES
    if count < 1:
        raise ValueError(f"clip too short for SyncNet: {num_frames} frames, {num_samples} samples")
    return count


def distance_curves(
    lips: np.ndarray, audio: np.ndarray, max_offset: int = MAX_OFFSET
) -> np.ndarray:
    """``(w, 2 * max_offset + 1)``: column ``j`` is the distance of lip window ``i`` to
    audio window ``i + j - max_offset`` (zero vectors beyond the clip: ``calc_pdist``)."""
    lips_t = torch.from_numpy(np.asarray(lips, dtype=np.float32))
    audio_t = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    padded = nn.functional.pad(audio_t, (0, 0, max_offset, max_offset))  # (w + 2 k, d)
    span = 2 * max_offset + 1
    rows = [
        nn.functional.pairwise_distance(lips_t[i : i + 1].expand(span, -1), padded[i : i + span])
        for i in range(len(lips_t))
    ]
    return torch.stack(rows).numpy()


@dataclass(frozen=True)
class SyncNetScore:
    """SyncNet's verdict on one clip."""

    offset_frames: int  # positive: the audio lags the video (syncnet_python prints -offset)
    lse_d: float  # min over offsets of the mean distance (lower better)
    lse_c: float  # median - min of the mean distance over offsets (higher better)


def score_distances(distances: np.ndarray) -> SyncNetScore:
    """LSE-D, LSE-C and the best offset from :func:`distance_curves`'s ``(w, 2k + 1)``."""
    mean = np.asarray(distances, dtype=np.float64).mean(axis=0)
    best = int(np.argmin(mean))
    max_offset = (len(mean) - 1) // 2
    return SyncNetScore(
        offset_frames=best - max_offset,
        lse_d=float(mean[best]),
        lse_c=float(np.median(mean) - mean[best]),
    )


def score_clip(
    model: SyncNet, lips: np.ndarray, num_frames: int, wave: np.ndarray, sample_rate: int
) -> SyncNetScore:
    """LSE of one clip's speech against its lip embeddings.

    Args:
        model: from :func:`load_syncnet`.
        lips: :func:`embed_lip_windows` of the clip's face crops (computed once per clip,
            whichever speech is scored against them).
        num_frames: video frames of the clip.
        wave: ``(t,)`` mono speech at ``sample_rate``.
        sample_rate: rate of ``wave``.
    """
    mfcc = mfcc_frames(wave, sample_rate)
    samples = round(len(wave) * SAMPLE_RATE / sample_rate)
    count = window_count(num_frames, samples)
    audio = embed_audio_windows(model, mfcc, count)
    return score_distances(distance_curves(lips[:count], audio))
