"""The two sample rates DubOps uses, defined once.

Speech is made and stored at 24 kHz (F5-TTS's mel front end, the vocoders, the
corpus). Every analysis model we run on speech (the ASR, the speaker encoder,
DNSMOS, SyncNet's MFCCs, the emotion classifier) takes 16 kHz input, so audio
is resampled to that before it is scored.
"""

SPEECH_SAMPLE_RATE = 24_000
ANALYSIS_SAMPLE_RATE = 16_000
