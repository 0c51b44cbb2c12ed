"""What a program keeps between calls of its density (a check of the
data made once per tensor) is dropped when the data changes: a different
tensor, the same tensor changed in place, or a bound that moved."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import loads
from quivers.errors import DataError

SOURCE = """
object N : FinSet 3
program p : N -> N
    sample q <- Beta(2.0, 2.0)
    observe s : N <- Binomial(total, probs=q)
    return s
export p
"""


def program():
    return loads(SOURCE.replace("total", "4")).morphism


def test_a_count_checked_once_is_checked_again_when_it_changes_in_place():
    p = program()
    s, q = torch.tensor([1.0, 2.0, 3.0]), {"q": torch.tensor(0.5)}
    first = p.log_joint(None, {"s": s}, q)
    assert p._compiled.supported  # the check was remembered
    assert torch.equal(p.log_joint(None, {"s": s}, q), first)
    s[1] = 7.0  # past total_count = 4: the same tensor, a new version
    with pytest.raises(DataError, match=r"observation `s` has a value outside the support of Binomial .* index \(1,\)"):
        p.log_joint(None, {"s": s}, q)


def test_another_tensor_is_checked():
    p = program()
    q = {"q": torch.tensor(0.5)}
    p.log_joint(None, {"s": torch.tensor([1.0, 2.0, 3.0])}, q)
    with pytest.raises(DataError, match=r"index \(2,\)"):
        p.log_joint(None, {"s": torch.tensor([1.0, 2.0, 5.0])}, q)


def test_a_bound_that_depends_on_data_is_part_of_the_check():
    p = loads("""
object N : FinSet 2
program p : N -> N
    data total : N
    sample q <- Beta(2.0, 2.0)
    observe s : N <- Binomial(total, probs=q)
    return s
export p
""").morphism
    s, q = torch.tensor([3.0, 1.0]), {"q": torch.tensor(0.5)}
    p.log_joint(None, {"s": s, "total": torch.tensor([4.0, 4.0])}, q)
    with pytest.raises(DataError, match="outside the support of Binomial"):
        p.log_joint(None, {"s": s, "total": torch.tensor([2.0, 2.0])}, q)
