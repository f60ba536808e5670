"""Authentic-Dubber's emotion side: the four emotion extractors (scene, face, text, audio)
behind one interface, and the progressive emotion graph with its hierarchical aggregation.
"""
