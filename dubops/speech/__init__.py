"""Speech generator: the F5-TTS-style DiT, flow matching, ControlNet, duration and vocoders."""
