"""Helpers shared by the test suites (tests/unit, contract, conformance, e2e, vectors).

One module per concern; the ``conftest.py`` files hold only fixtures, thin wrappers
over these. Test modules import helpers from here (``from support.cli import
tenure``), never from a conftest module (tests/unit/test_test_layout.py checks it).
``tests/`` is on ``sys.path`` through pytest's rootdir-relative import of
``tests/conftest.py``, as it is for ``contract``, ``e2e`` and the other suites."""
