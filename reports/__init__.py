"""The HTML report renderer."""
