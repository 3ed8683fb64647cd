"""Reusable network pieces: the packed recurrent encoder and mask-aware pooling."""
