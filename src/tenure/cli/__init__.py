"""The ``tenure`` command line (Typer): one module per noun."""
