"""Store: the object storage and everything laid out in it.

The S3/R2 client and its errors (``objects``, ``errors``), where every file of a video,
batch, manifest and export lives (``layout``), a batch's stored input rows, what a
video's commit writes (``outputs``), and the commit itself, which also reads it back
(``commit``). boto3 is imported here and nowhere else in core.
"""
