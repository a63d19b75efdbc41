"""Sources: getting a video's audio from where its URL points, safely.

Which addresses a source may reach (``safety``, ``literal_addresses``), the guard
yt-dlp's own connections go through (``network_guard``), the bounded download and its
transcode to the committed 48 kHz and analysis 16 kHz copies (``download``), and the
typed errors a source's refusals map to (``errors``). yt-dlp is imported here and
nowhere else in core.
"""
