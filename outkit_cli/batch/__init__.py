"""Bulk sending: `outkit send --batch FILE`, streamed, journalled, exactly once."""
