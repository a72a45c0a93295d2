"""docs/errors.md shows what each misuse raises with cgad's actual messages: run its examples."""
import doctest
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_errors_doc_examples():
    result = doctest.testfile(os.path.join(ROOT, "docs", "errors.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 50
    assert result.failed == 0
