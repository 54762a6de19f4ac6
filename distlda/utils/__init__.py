"""Small shared utilities: file containers, formatting, helpers with no LDA math."""
