"""Presentation: the HTML report, the teaching demo and its translations, the progress line."""
