"""Programs that draw from morphisms: a program as a scan cell
(`program cell(x_t, h_prev) : X * H -> H`), a morphism applied to a
program's input (`sample h <- backbone`) and scored observations
(`observe t : Resp <- lm_head(h)`). The GRU- and LSTM-shaped language
models of the seed's documentation load as written and train."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import loads
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import DataError, QuiversError, UnknownNameError, UnsupportedError

GRU_LM = """\
object Token : FinSet 8
object Resp : FinSet 16
object Embedded : Real 4
object Hidden : Real 8

morphism tok_embed : Token -> Embedded [role=embed]
morphism gate_z, gate_r : Embedded * Hidden -> Hidden ~ LogitNormal
morphism lm_head : Hidden -> Token ~ Categorical

program gru_cell(x_t, h_prev) : Embedded * Hidden -> Hidden
    sample z <- gate_z(x_t, h_prev)
    sample r <- gate_r(x_t, h_prev)

    let reset_hidden = r * h_prev

    sample h_cand <- Normal(reset_hidden, 0.05)

    let z_complement = 1.0 - z
    let h_new = z_complement * h_prev + z * h_cand
    return h_new

define backbone = tok_embed >> scan(gru_cell)

program gru_lm : Token -> Token
    sample h <- backbone

    observe next_token : Resp <- lm_head(h)
    return next_token

export gru_lm
"""


def test_the_gru_language_model_loads_as_written_and_trains():
    torch.manual_seed(0)
    m = loads(GRU_LM)
    assert m.morphism is m.gru_lm and "gru_lm" not in m.programs
    xs = torch.randint(0, 8, (16, 5))
    y = m.gru_lm.sample(xs)
    assert y.shape == (16,) and bool(((y >= 0) & (y < 8)).all())
    names = {n for n, _ in m.gru_lm.named_parameters()}
    assert any("gate_z" in n or "kernels" in n for n in names) and len(names) >= 7
    losses = _trains(m.gru_lm, xs, xs[:, -1], 60, 0.05)
    assert sum(losses[-10:]) / 10 < losses[0] - 0.15


def test_a_program_cell_is_what_its_steps_compute():
    torch.manual_seed(1)
    m = loads(GRU_LM)
    x, h = torch.randn(3, 4), torch.randn(3, 8)
    torch.manual_seed(5)
    got = m.gru_cell.sample(torch.cat([x, h], -1))
    torch.manual_seed(5)
    z = m.gate_z.distribution(x, h).rsample()
    r = m.gate_r.distribution(x, h).rsample()
    cand = torch.distributions.Normal(r * h, 0.05).rsample()
    torch.testing.assert_close(got, (1.0 - z) * h + z * cand)


def test_the_log_density_scores_the_observations():
    torch.manual_seed(2)
    m = loads(GRU_LM)
    xs = torch.randint(0, 8, (4, 3))
    torch.manual_seed(9)
    got = m.gru_lm.log_prob({"next_token": xs[:, 0]}, xs)
    torch.manual_seed(9)
    h = m.backbone.sample(xs)
    torch.testing.assert_close(got, m.lm_head.log_prob(xs[:, 0], h).sum())
    with pytest.raises(DataError, match="observes no `nxt`; it observes `next_token`"):
        m.gru_lm.log_prob({"nxt": xs[:, 0]}, xs)


def test_bare_families_and_several_inputs_round_trip():
    tree = parse(GRU_LM)
    assert parse(dumps(tree)) == tree
    cell = tree.items[7]
    assert cell.input == "x_t, h_prev"


BAD = "object A : FinSet 2\nobject R : Real 2\nmorphism k : A -> R ~ Normal\n"


@pytest.mark.parametrize("text, cls, message, line", [
    ("program p : A -> R\n    sample h <- kk\n    return h\n", UnknownNameError, "unknown morphism `kk`", 5),
    ("program p : A -> R\n    sample h <- k\n    sample v <- Normall(h, 1.0)\n    return v\n", UnknownNameError,
     "unknown family or morphism `Normall`", 6),
    ("program p : A -> R\n    sample h <- k\n    return hh\n", UnknownNameError, "`hh` is not defined", 6),
    ("program p : A -> R\n    sample h <- k\n    factor h\n    return h\n", UnsupportedError, "a `factor` step", 6),
    ("program p(a, b) : A -> R\n    sample h <- k\n    return h\n", QuiversError, "binds 2 inputs", 4),
    ("program p : A -> R\n    sample h <- k\n    let v = h[0]\n    return v\n", UnsupportedError, "expressions are", 6),
    ("program p : A -> R\n    sample h <- k\n    let v = h > 0\n    return v\n", UnsupportedError, "expressions are", 6),
])
def test_bad_programs_over_kernels_are_located(text, cls, message, line):
    with pytest.raises(cls, match=message) as info:
        loads(BAD + text)
    assert info.value.span.line == line


LSTM_LM = """\
object Token : FinSet 8
object Resp : FinSet 16
object Embedded : Real 4
object Hidden : Real 8

morphism tok_embed : Token -> Embedded [role=embed]
morphism gate_i, gate_f, gate_o : Embedded * Hidden -> Hidden ~ LogitNormal
morphism cell_cand : Embedded * Hidden -> Hidden ~ Normal
morphism lm_head : Hidden -> Token ~ Categorical

program lstm_cell(x_t, h_prev) : Embedded * Hidden -> Hidden
    sample i_gate <- gate_i(x_t, h_prev)
    sample f_gate <- gate_f(x_t, h_prev)
    sample o_gate <- gate_o(x_t, h_prev)
    sample g_cand <- cell_cand(x_t, h_prev)

    let c_new = f_gate * h_prev + i_gate * g_cand
    let two_c = 2.0 * c_new
    let sig_2c = sigmoid(two_c)
    let tanh_c = 2.0 * sig_2c - 1.0
    let h_new = o_gate * tanh_c
    return h_new

define backbone = tok_embed >> scan(lstm_cell)

program lstm_lm : Token -> Token
    sample h <- backbone

    observe next_token : Resp <- lm_head(h)
    return next_token

export lstm_lm
"""

SEQ2SEQ = """\
object Source, Target : FinSet 6
object Resp : FinSet 16
object Latent : Real 8
object HeadOut : Real 2
object Combined : Real 16

morphism src_embed : Source -> Latent [role=embed]
morphism tgt_embed : Target -> Latent [role=embed]
morphism enc_head : Latent -> HeadOut [replicate=4, param_source=mlp] ~ Normal
morphism dec_head : Latent -> HeadOut [replicate=4, param_source=mlp] ~ Normal
morphism cross : Combined -> Combined [param_source=mlp] ~ Normal
morphism lm_head : Combined -> Target ~ Categorical

define encoder = src_embed >> stack(fan(enc_head), 2)
define decoder = tgt_embed >> stack(fan(dec_head), 2)
define backbone = (encoder @ decoder) >> cross

program seq2seq : Source * Target -> Target
    sample h <- backbone

    observe next_token : Resp <- lm_head(h)
    return next_token

export seq2seq
"""


def _trains(model, x, y, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = -model.log_prob({"next_token": y}, x) / len(y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_the_lstm_language_model_learns_the_last_token():
    torch.manual_seed(3)
    m = loads(LSTM_LM)
    xs = torch.randint(0, 8, (32, 5))
    losses = _trains(m.lstm_lm, xs, xs[:, -1], 80, 0.03)
    assert losses[-1] < 0.3 * losses[0]
    assert m.lstm_lm.sample(xs).shape == (32,)


def test_the_seq2seq_model_reads_pairs_and_trains():
    torch.manual_seed(4)
    m = loads(SEQ2SEQ)
    pairs = torch.randint(0, 36, (32,))                   # (source, target), row-major
    losses = _trains(m.seq2seq, pairs, pairs // 6, 60, 0.02)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5
    y = m.seq2seq.sample(pairs)
    assert y.shape == (32,) and bool(((y >= 0) & (y < 6)).all())
