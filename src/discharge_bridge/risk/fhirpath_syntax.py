"""A strict FHIRPath syntax check.

fhirpathpy's parser installs a silent ANTLR error listener, so `compile()` accepts broken
expressions and they fail (or quietly return nothing) at evaluation. Mappings are checked here at
load so hospital IT sees the mistake when the file is read, not weeks later as a missing flag.
"""

from __future__ import annotations

from typing import Any

from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser


class _SyntaxProblem(Exception):
    pass


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any) -> None:
        raise _SyntaxProblem(f"column {column + 1}: {msg}")


def fhirpath_syntax_error(expression: str) -> str | None:
    """None when the expression parses completely, else a short description of the problem."""
    if not expression.strip():
        return "empty expression"
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    try:
        parser.expression()
        if tokens.LA(1) != Token.EOF:
            return f"unexpected {tokens.LT(1).text!r} at column {tokens.LT(1).column + 1}"
    except _SyntaxProblem as exc:
        return str(exc)
    except Exception as exc:  # the generated lexer raises its own error types on bad input
        return str(exc) or type(exc).__name__
    return None
