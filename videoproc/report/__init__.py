"""Pieces of `videoproc inspect`: the contact sheet, the statistics, poster frames of generated
videos, and the self-contained HTML page."""
