"""Analysis: what the models and signal processing find in a recording.

Decoding (``audio``), speech activity (``vad``), diarization (``diarization/``: the
default backend from pretrained weights and pyannote's), speaker embeddings (the CAM++
encoder in ``campplus``, one vector per segment in ``speaker_embeddings``), music and
audio events, and the per-segment quality labels (DNSMOS and signal measures). Model
weights are located in ``model_files``; CUDA out-of-memory handling is ``gpu_memory``.
torch is imported here, where it runs.
"""
