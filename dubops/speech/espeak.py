"""espeak-ng speech synthesis through the ``espeakng-loader`` wheel (ctypes).

Why ctypes: the wheel ships the shared library and its data folder, so neither
inference nor the synthetic corpus needs a system package or a download.
Synchronous mode with phoneme events gives every phoneme's exact sample
position, from which the per-phoneme durations in mel frames follow (see
DESIGN.md, "Known facts").

Why in the speech package: the speech generator phonemizes every script with it
at inference (:func:`dubops.speech.text.phonemize`), and inference must not
import the data-synthesis package. The synthetic corpus (:mod:`dubops.data`)
speaks its lines with the same engine and imports it from here, so corpus
phonemes and inference phonemes come from one binding.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

# espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_OUTPUT_SYNCHRONOUS = 2
# espeakINITIALIZE_PHONEME_EVENTS
_INIT_PHONEME_EVENTS = 0x0001
# espeak_EVENT_TYPE values
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
# espeak_PARAMETER values
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7
# espeak_POSITION_TYPE: POS_CHARACTER; synth flags: espeakCHARS_AUTO
_POS_CHARACTER = 1
_CHARS_AUTO = 0


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Prosody:
    """espeak parameters for one utterance (absolute values after deltas)."""

    rate: int = 175  # words per minute
    volume: int = 100  # 0..200
    pitch: int = 50  # 0..99
    pitch_range: int = 50  # 0..99
    word_gap: int = 0  # extra pause between words, units of 10 ms


@dataclass
class Utterance:
    """Raw espeak output: int16 samples at ``sample_rate`` and phoneme spans."""

    samples: np.ndarray  # (t,) int16
    sample_rate: int
    phonemes: list[str]
    starts: list[int]  # sample index where each phoneme begins


class EspeakSynthesizer:
    """One process-wide espeak-ng engine (the library keeps global state).

    Create it once per process; calls are serialised by a lock because the C
    library is not re-entrant.
    """

    _lock = threading.Lock()
    _instance: EspeakSynthesizer | None = None

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        # espeak-ng seeds its noise generator (breath, klatt aspiration) itself;
        # we reseed before every utterance so the audio is reproducible.
        self._set_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(
            _OUTPUT_SYNCHRONOUS, 0, data_path, _INIT_PHONEME_EVENTS
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed with {self.sample_rate}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        # Keep a Python reference: espeak calls it after this function returns.
        self._callback = _SynthCallback(self._on_audio)
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def shared(cls) -> EspeakSynthesizer:
        """The engine of this process, created on first use."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = ev.id.string.split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((int(ev.sample), name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, prosody: Prosody, seed: int = 0) -> Utterance:
        """Speak ``text`` with ``voice`` and ``prosody``.

        Args:
            text: plain English text.
            voice: an espeak voice name with optional variant, e.g. ``"en-us+f2"``.
            prosody: absolute rate, volume, pitch and range.
            seed: seed of espeak's noise generator for this utterance. espeak also
                carries a little wave-generator state from one utterance to the
                next, so bit-exact output needs a fresh process as well
                (the corpus generator runs each clip in one).

        Returns:
            The samples and the phoneme spans (pauses included as ``"_"``).
        """
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(
                    f"espeak voice {voice!r} is unknown; pick one from `espeak-ng --voices`"
                )
            # SetVoiceByName resets parameters: set them after it.
            self._lib.espeak_SetParameter(PARAM_RATE, int(prosody.rate), 0)
            self._lib.espeak_SetParameter(PARAM_VOLUME, int(prosody.volume), 0)
            self._lib.espeak_SetParameter(PARAM_PITCH, int(prosody.pitch), 0)
            self._lib.espeak_SetParameter(PARAM_RANGE, int(prosody.pitch_range), 0)
            self._lib.espeak_SetParameter(PARAM_WORDGAP, int(prosody.word_gap), 0)
            self._chunks, self._events = [], []
            if self._set_seed is not None:
                self._set_seed(int(seed))
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            rc = self._lib.espeak_Synth(
                buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_AUTO, None, None
            )
            if rc != 0:
                raise RuntimeError(f"espeak_Synth failed with code {rc}")
            samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
            events = list(self._events)
        phonemes = [name for _, name in events]
        starts = [min(max(pos, 0), len(samples)) for pos, _ in events]
        return Utterance(samples, self.sample_rate, phonemes, starts)
