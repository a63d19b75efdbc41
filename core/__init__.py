"""Shared core: contracts, settings, storage, logging and the audio backends."""
