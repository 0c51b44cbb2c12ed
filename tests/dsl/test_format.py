"""``format_source``: canonical QVR with its comments kept."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from quivers.dsl import dumps, parse
from quivers.dsl.format import comments, format_source

from tests.dsl.strategies import modules

SOURCE = """# header
object Item : FinSet 5 # n
object K:FinSet 2
# the model
program gmm : Item -> Item [effects=[Sample,
        Score, Marginal]]   # sig
    sample probs : K <- HalfNormal(1.0)
    # means
    sample mu_k : K <- Normal(0.0,
        # inside the call
                              5.0)  # wide
    marginalize z : K <- Categorical(probs)  # z
        # obs
        observe y : Item <- Normal(mu_k[z], 1.0)
    # before return
    return y
# export it
export gmm
# trailing
"""

EXPECTED = """# header
object Item : FinSet 5  # n
object K : FinSet 2

# the model
program gmm : Item -> Item [effects=[Sample, Score, Marginal]]  # sig
    sample probs : K <- HalfNormal(1.0)
    # means
    sample mu_k : K <- Normal(0.0, 5.0)  # inside the call # wide
    marginalize z : K <- Categorical(probs)  # z
        # obs
        observe y : Item <- Normal(mu_k[z], 1.0)
    # before return
    return y

# export it
export gmm
# trailing
"""


def test_comments_go_before_the_next_statement_or_after_their_own():
    assert format_source(SOURCE) == EXPECTED


def test_formatting_is_idempotent_and_keeps_the_meaning():
    assert format_source(EXPECTED) == EXPECTED
    assert parse(EXPECTED) == parse(SOURCE)


def with_comments(text: str, where: list[int], trailing: list[bool]) -> str:
    lines = text.splitlines()
    for n, (at, trail) in enumerate(zip(where, trailing)):
        if not lines:
            lines.append(f"# c{n}")
            continue
        i = at % len(lines)
        if trail:
            lines[i] = f"{lines[i]}  # c{n}"
        else:
            indent = len(lines[i]) - len(lines[i].lstrip())
            lines.insert(i, " " * indent + f"# c{n}")
    return "\n".join(lines) + "\n"


@given(modules, st.lists(st.integers(0, 200), max_size=4), st.lists(st.booleans(), min_size=4, max_size=4))
def test_laws_on_random_modules(module, where, trailing):
    text = with_comments(dumps(module), where, trailing)
    out = format_source(text)
    assert parse(out) == parse(text)
    assert format_source(out) == out
    # every comment is kept, in the order written
    assert re.findall(r"# c\d+", out) == re.findall(r"# c\d+", text)


@given(modules)
def test_without_comments_format_is_dumps(module):
    assert format_source(dumps(module)) == dumps(module)
