"""One router per resource: health, groups (and their bases), encodings, export."""
