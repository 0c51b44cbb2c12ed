"""Hypothesis strategies for the reliability tests: QVR sources, valid and
mutated.

Valid sources come from three places: the seed chapter's programs (as the
chapter prints them, indentation restored), a few hand-written programs
that use every construct, and the AST strategies of ``tests/dsl`` written
out with ``dumps``. Mutations then break them the ways people and tools
break text: a token deleted, doubled, swapped or replaced, a line
re-indented, a stray character (control characters, unicode, a byte-order
mark), a number made huge or tiny, a name made unicode or a keyword, the
text cut short, its line endings changed, an expression nested very
deeply, or the whole file replaced by nothing at all.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from quivers.dsl import dumps
from tests.dsl.strategies import modules, qvr_fragments, scoped_modules
from tests.spec import seed

HANDWRITTEN = [
    """\
object Item : FinSet 6
object G : FinSet 3
object K : FinSet 2
object P : FinSet = K * G + K

program grouped : Item -> Item [effects=[Sample, Score, Marginal]]
    index group : Item -> G
    sample probs : G * K <- HalfNormal(1.0)  # per-group weights
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    let scale = 2 * sd_k ^ 2 + 1e-3
    marginalize z : K <- Categorical(probs) [over=G]
        observe y : Item <- Normal(mu_k[z], sqrt(scale[z])) [via=group]
    factor -0.5 * sum(mu_k ^ 2)
    return y

export grouped
""",
    """\
object Item : FinSet 4
object K : FinSet 3
object J : FinSet 2

program nested : Item -> Item
    sample w : K <- HalfNormal(1.0)
    sample v : J <- HalfNormal(1.0)
    sample loc : K * J <- Normal(0.0, 1.0)
    marginalize z : K <- Categorical(w)
        marginalize u : J <- Categorical(v)
            observe y : Item <- Normal(loc[z, u], exp(-1.0))
    return y
""",
    "object K : FinSet 2\n",
    "",
]

SEEDS = [seed.GMM, seed.GROUPED, *HANDWRITTEN]
"""Valid sources that compile: the seed's two programs and the handwritten ones."""

valid_sources = st.one_of(
    st.sampled_from(SEEDS),
    scoped_modules.map(dumps),
    modules.map(dumps),
)
"""QVR text that parses: seeds, and random modules written canonically."""

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|[0-9.]+(?:[eE][+-]?[0-9]+)?|\n[ \t]*|[ \t]+|.", re.S)
_NUMBER = re.compile(r"(?<![A-Za-z_0-9.])[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*\b")

stray_chars = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(
        ["\x00", "\r", "\t", "\x0b", "\x0c", "\ufeff", "\u2028", "\u00a0", "\u200b", "#", "\\",
         "\"", "'", "{", "}", "~", ";", "@", "$", "`", "\U0001f600", "\ud7ff", "\uffff"]
    ),
)

huge_numbers = st.sampled_from(
    ["1e999", "1e-999", "1e308", "1.7976931348623157e308", "4.9e-324", "9" * 400, "9" * 5000,
     "0" * 50 + "1", "00", "0.", ".0", "1e+400", "10 ^ 400", "10 ^ -400", "9 ^ 9 ^ 9",
     "2 ^ 2 ^ 2 ^ 2 ^ 2 ^ 2", "(10 ^ 300) * (10 ^ 300)", "exp(exp(exp(1000)))", "exp(1000)",
     "-1", "0", "1e308 * 10", "2 ^ 1e10", "0.5 ^ 1e10", "log(0)", "1 / 0", "(-1) ^ 0.5"]
)

unicode_names = st.one_of(
    st.sampled_from(["\u03bc", "caf\u00e9", "\u2115", "\uff58", "x\u0301", "_", "__", "object",
                     "program", "FinSet", "return", "index", "K" * 300]),
    st.text(st.characters(categories=["L", "N", "Pc"]), min_size=1, max_size=8),
)

indents = st.sampled_from(["", " ", "  ", "   ", "    ", "     ", "\t", " \t", "\t ", "        ", "  \t  "])


def _deep(depth: int, kind: str) -> str:
    if kind == "neg":
        return "-" * depth + "1.0"
    if kind == "sum":
        return " + ".join(["1.0"] * depth)
    if kind == "paren":
        return "(" * depth + "1.0" + ")" * depth
    if kind == "call":
        return "exp(" * depth + "0.0" + ")" * depth
    if kind == "pow":
        return " ^ ".join(["1"] * depth)
    return "x" + "[0]" * depth


deep_expressions = st.builds(
    _deep, st.integers(1, 3000), st.sampled_from(["neg", "sum", "paren", "call", "pow", "index"])
)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@st.composite
def _mutate_once(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from([
        "delete", "duplicate", "swap", "replace", "stray", "indent", "number", "name",
        "truncate", "line_endings", "deep", "empty",
    ]))
    toks = _tokens(text)
    if kind == "empty" or not toks:
        return draw(st.sampled_from(["", " ", "\n", "\n\n\n", "    ", "\t\n", "# only a comment", "\ufeff", "\x00"]))
    i = draw(st.integers(0, len(toks) - 1))
    if kind == "delete":
        return "".join(toks[:i] + toks[i + 1:])
    if kind == "duplicate":
        return "".join(toks[: i + 1] + toks[i:])
    if kind == "swap":
        j = draw(st.integers(0, len(toks) - 1))
        toks[i], toks[j] = toks[j], toks[i]
        return "".join(toks)
    if kind == "replace":
        toks[i] = draw(qvr_fragments)
        return "".join(toks)
    if kind == "stray":
        pos = draw(st.integers(0, len(text)))
        return text[:pos] + draw(stray_chars) + text[pos:]
    if kind == "indent":
        lines = text.split("\n")
        k = draw(st.integers(0, len(lines) - 1))
        lines[k] = draw(indents) + lines[k].lstrip(" \t")
        return "\n".join(lines)
    if kind == "number":
        spots = list(_NUMBER.finditer(text))
        if not spots:
            return text + draw(huge_numbers)
        m = draw(st.sampled_from(spots))
        return text[: m.start()] + draw(huge_numbers) + text[m.end():]
    if kind == "name":
        spots = list(_NAME.finditer(text))
        if not spots:
            return draw(unicode_names) + text
        m = draw(st.sampled_from(spots))
        new = draw(unicode_names)
        # Rename every occurrence half of the time, so that the program stays
        # consistent and the new name itself is what gets tested.
        if draw(st.booleans()):
            return re.sub(rf"\b{re.escape(m.group())}\b", lambda _: new, text)
        return text[: m.start()] + new + text[m.end():]
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "line_endings":
        return text.replace("\n", draw(st.sampled_from(["\r\n", "\r", "\n\n", "\u2028", "\n \n"])))
    assert kind == "deep"
    spots = list(_NUMBER.finditer(text))
    deep = draw(deep_expressions)
    if not spots:
        return text + "\n" + deep
    m = draw(st.sampled_from(spots))
    return text[: m.start()] + deep + text[m.end():]


@st.composite
def mutated_sources(draw: st.DrawFn) -> str:
    """A valid source with one to four mutations applied in turn."""
    text = draw(valid_sources)
    for _ in range(draw(st.integers(1, 4))):
        text = draw(_mutate_once(text))
    return text
