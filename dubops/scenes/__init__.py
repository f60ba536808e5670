"""Scenes: a long video dubbed line by line, each line in its speaker's voice.

:mod:`segments` reads and checks the lines (SRT or JSON), :mod:`segment_cache`
keeps each dubbed line by its inputs, :mod:`track` assembles the lines into one
track of the video's length, :mod:`scene_dubbing` runs them through
:class:`dubops.inference.DubbingPipeline`, and :mod:`synthetic_scene` strings
corpus clips into a multi-speaker scene for tests and the demo.
"""
