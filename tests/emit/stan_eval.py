"""A small interpreter of the Stan that quivers emits, for tests.

No Stan toolchain runs in CI. To check that an emitted program means what
the quivers program means, this module runs its ``functions``,
``transformed data``, ``transformed parameters`` and ``model`` blocks in float64 numpy: every
sampling statement adds its full log density (normalizing constants
included; Stan's ``~`` drops them, which changes the target by a
constant), and the built-in distributions are written from the Stan
Functions Reference with scipy, independently of quivers and torch. The
``data`` and ``parameters`` blocks are not run: their values are given.

Only what the emitter writes is understood: declarations without bounds,
assignments, ``target +=``, ``~``, ``for``, ``if``/``else`` and ``return``;
expressions with Stan's precedence, ternaries, 1-based indexing and
slices, row-vector literals and transposes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from lark import Lark, Token, Transformer, Tree
from scipy import special, stats

GRAMMAR = r"""
start: stmt*
?stmt: funcdef | decl | assign | tilde | target | for_ | if_ | ret | "{" stmt* "}" -> seq
funcdef: type NAME "(" [param ("," param)*] ")" "{" stmt* "}"
param: type NAME
decl: type NAME ["=" expr] ";"
type: BASIC ["[" expr ("," expr)* "]"] -> basic_type
    | "array" "[" expr ("," expr)* "]" type -> array_type
BASIC.2: /(real|int|vector|row_vector|matrix)\b/
assign: expr ASSIGNOP expr ";"
ASSIGNOP: "=" | "+=" | "-=" | "*="
tilde: expr "~" NAME "(" [expr ("," expr)*] ")" [trunc] ";"
trunc: "T" "[" [expr] "," [expr] "]"
target: "target" "+=" expr ";"
for_: "for" "(" NAME "in" expr ":" expr ")" stmt
if_: "if" "(" expr ")" stmt ["else" stmt]
ret: "return" expr ";"

?expr: cond
?cond: or_ | or_ "?" expr ":" expr -> ternary
?or_: and_ | or_ "||" and_ -> or_op
?and_: cmp | and_ "&&" cmp -> and_op
?cmp: add | add CMP add -> compare
?add: mul | add ADDOP mul -> binop
?mul: unary | mul MULOP unary -> binop
?unary: power | "-" unary -> neg | "!" unary -> not_op
?power: postfix | postfix "^" unary -> pow_op
?postfix: atom | postfix "[" idx ("," idx)* "]" -> index | postfix "'" -> transpose
?atom: NUMBER -> number
     | NAME -> var
     | NAME "(" [args] ")" -> call
     | "(" expr ")"
     | "[" expr ("," expr)* "]" -> rowvec
args: expr "|" expr ("," expr)* -> cond_args
    | expr ("," expr)* -> plain_args
idx: expr | ":" -> all_idx
CMP: "<=" | ">=" | "==" | "!=" | "<" | ">"
ADDOP: "+" | "-"
MULOP: ".*" | "./" | "%/%" | "*" | "/" | "%"
NUMBER: /\d+\.\d*([eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
COMMENT: /\/\/[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr")


class _Return(Exception):
    def __init__(self, value):
        self.value = value


def _mn(y, theta):
    y = np.rint(np.asarray(y)).astype(int)
    return stats.multinomial.logpmf(y, int(y.sum()), theta)


def _dm(y, alpha):
    y, a = np.asarray(y, dtype=float), np.asarray(alpha, dtype=float)
    n, s = y.sum(), a.sum()
    return float(special.gammaln(n + 1) + special.gammaln(s) - special.gammaln(n + s)
                 + np.sum(special.gammaln(y + a) - special.gammaln(a) - special.gammaln(y + 1)))


def _lkj(L, eta):
    """Stan's lkj_corr_cholesky_lpdf: the LKJ density of L L' times the
    Jacobian of the Cholesky factorization, with its normalizer."""
    L = np.asarray(L)
    K = L.shape[0]
    d = np.log(np.diag(L))[1:]
    k = np.arange(2, K + 1)
    return float(np.sum((K - k + 2 * eta - 2) * d) + _lkj_norm(K, eta))


def _lkj_norm(K, eta):
    # log of the LKJ normalizing constant (Lewandowski, Kurowicka and Joe 2009)
    total = 0.0
    for i in range(1, K):
        b = eta + (K - 1 - i) / 2
        total += (K - i) * (2 * special.gammaln(b) - special.gammaln(2 * b)) + (2 * eta - 2 + K - i) * (K - i) * math.log(2)
    return -total


def _log_softmax(x):
    x = np.asarray(x, dtype=float)
    return x - special.logsumexp(x)


BUILTINS = {
    "log": np.log, "exp": np.exp, "log1m": lambda x: np.log1p(-np.asarray(x)), "log1p": np.log1p,
    "logit": special.logit, "inv_logit": special.expit, "log1p_exp": lambda x: np.logaddexp(0, x), "tanh": np.tanh, "pow": np.power, "square": np.square, "abs": np.abs,
    "sqrt": np.sqrt, "fabs": np.abs, "fmax": np.maximum, "fmin": np.minimum, "log2": lambda *x: math.log(2) if not x else np.log2(x[0]),
    "sum": np.sum, "mean": np.mean, "log_sum_exp": lambda *x: special.logsumexp(np.asarray(x[0] if len(x) == 1 else x)),
    "log_softmax": _log_softmax, "softmax": special.softmax, "lgamma": special.gammaln, "pi": lambda: math.pi,
    "rep_vector": lambda v, n: np.full(int(n), float(v)),
    "rep_matrix": lambda v, m, n: np.full((int(m), int(n)), float(v)), "max": np.max,
    "to_vector": lambda x: np.asarray(x, dtype=float).flatten(order="F"),  # column-major, as Stan
    "rep_array": lambda v, *n: np.broadcast_to(np.asarray(v, dtype=float), tuple(int(k) for k in n) + np.shape(v)).copy(),
    "log1m_exp": lambda x: np.log(-np.expm1(x)), "negative_infinity": lambda: -math.inf,
    "atanh": np.arctanh, "log_inv_logit": lambda x: -np.logaddexp(0, -np.asarray(x)),
    "log1m_inv_logit": lambda x: -np.logaddexp(0, np.asarray(x)),
    "log_diff_exp": lambda a, b: a + np.log(-np.expm1(b - a)),
    "normal_lpdf": lambda y, m, s: stats.norm.logpdf(y, m, s),
    "normal_lcdf": lambda y, m, s: stats.norm.logcdf(y, m, s),
    "normal_lccdf": lambda y, m, s: stats.norm.logsf(y, m, s),
    "student_t_lpdf": lambda y, nu, m, s: stats.t.logpdf(y, nu, m, s),
    "cauchy_lpdf": lambda y, m, s: stats.cauchy.logpdf(y, m, s),
    "exponential_lpdf": lambda y, r: stats.expon.logpdf(y, scale=1 / np.asarray(r)),
    "gamma_lpdf": lambda y, a, b: stats.gamma.logpdf(y, a, scale=1 / np.asarray(b)),
    "beta_lpdf": lambda y, a, b: stats.beta.logpdf(y, a, b),
    "uniform_lpdf": lambda y, a, b: stats.uniform.logpdf(y, a, np.asarray(b) - a),
    "poisson_lpmf": lambda y, r: stats.poisson.logpmf(y, r),
    "neg_binomial_lpmf": lambda y, a, b: stats.nbinom.logpmf(y, a, np.asarray(b) / (1 + np.asarray(b))),
    "gamma_lcdf": lambda y, a, b: stats.gamma.logcdf(y, a, scale=1 / np.asarray(b)),
    "gamma_lccdf": lambda y, a, b: stats.gamma.logsf(y, a, scale=1 / np.asarray(b)),
    "bernoulli_lpmf": lambda y, p: stats.bernoulli.logpmf(y, p),
    "categorical_lpmf": lambda y, p: np.log(np.asarray(p)[np.rint(np.asarray(y)).astype(int) - 1]),
    "multinomial_lpmf": _mn,
    "multinomial_logit_lpmf": lambda y, g: _mn(y, special.softmax(g)),
    "dirichlet_multinomial_lpmf": _dm,
    "dirichlet_lpdf": lambda y, a: stats.dirichlet.logpdf(np.asarray(y), np.asarray(a)),
    "lkj_corr_cholesky_lpdf": _lkj,
    "multi_normal_lpdf": lambda y, m, S: stats.multivariate_normal.logpdf(y, m, S),
    "multi_normal_cholesky_lpdf": lambda y, m, L: stats.multivariate_normal.logpdf(y, m, L @ L.T),
    "multi_normal_prec_lpdf": lambda y, m, P: stats.multivariate_normal.logpdf(y, m, np.linalg.inv(P)),
}


class _Build(Transformer):
    def number(self, t):
        text = str(t[0])
        return ("num", float(text) if any(c in text for c in ".eE") else int(text))

    def var(self, t):
        return ("var", str(t[0]))

    def call(self, t):
        name, args = str(t[0]), t[1] if len(t) > 1 and t[1] is not None else []
        return ("call", name, args)

    def cond_args(self, t):
        return list(t)

    plain_args = cond_args

    def rowvec(self, t):
        return ("rowvec", list(t))

    def ternary(self, t):
        return ("ternary", *t)

    def or_op(self, t):
        return ("bin", "||", t[0], t[1])

    def and_op(self, t):
        return ("bin", "&&", t[0], t[1])

    def compare(self, t):
        return ("bin", str(t[1]), t[0], t[2])

    binop = compare

    def neg(self, t):
        return ("neg", t[0])

    def not_op(self, t):
        return ("not", t[0])

    def pow_op(self, t):
        return ("bin", "^", t[0], t[1])

    def index(self, t):
        return ("index", t[0], list(t[1:]))

    def idx(self, t):
        return t[0]

    def all_idx(self, t):
        return ("all",)

    def transpose(self, t):
        return ("transpose", t[0])


class StanModel:
    """The emitted program's statements, run at given values.

    Examples
    --------
    >>> m = StanModel("model {\\n  y ~ normal(mu, 1.0);\\n}\\n")
    >>> round(m.log_density({"y": 0.0, "mu": 0.0}), 6)
    -0.918939
    """

    def __init__(self, code: str) -> None:
        self.blocks = _blocks(code)
        self.functions: dict = {}
        for f in self._parse(self.blocks.get("functions", "")):
            _, name, params, body = f
            self.functions[name] = (params, body)

    def _parse(self, text: str) -> list:
        tree = _parser().parse(text)
        return [_stmt(s) for s in tree.children]

    def log_density(self, values: dict) -> float:
        """``target`` after the transformed data and parameters and the model block."""
        env = {k: (np.asarray(v, dtype=float) if not isinstance(v, int) and np.ndim(v) else v) for k, v in values.items()}
        env["__target"] = 0.0
        for block in ("transformed data", "transformed parameters", "model"):
            for s in self._parse(self.blocks.get(block, "")):
                self._exec(s, env)
        return float(env["__target"])

    # ------------------------------------------------------------ statements

    def _exec(self, s, env) -> None:
        kind = s[0]
        if kind == "seq":
            for c in s[1]:
                self._exec(c, env)
        elif kind == "decl":
            _, shape, name, init = s
            dims = [int(self._eval(d, env)) for d in shape]
            env[name] = self._eval(init, env) if init is not None else (np.full(dims, np.nan) if dims else math.nan)
            if init is not None and dims:
                env[name] = np.array(np.broadcast_to(env[name], dims), dtype=float)
        elif kind == "assign":
            _, target, op, e = s
            value = self._eval(e, env)
            if target[0] == "var":
                old = env.get(target[1])
                env[target[1]] = _op(op, old, value)
            else:
                arr = env[target[1][1]]
                key = self._key(target[2], env)
                arr[key] = _op(op, arr[key], value)
        elif kind == "target":
            env["__target"] = env["__target"] + float(np.sum(self._eval(s[1], env)))
        elif kind == "tilde":
            _, y, dist, args, bounds = s
            value = self._eval(y, env)
            vals = [self._eval(a, env) for a in args]
            lp = float(np.sum(self._lp(dist, value, vals)))
            if bounds is not None:  # T[low, high]: renormalized by the cdfs, -inf outside
                low, high = (self._eval(x, env) if x is not None else None for x in bounds)
                if (low is not None and value < low) or (high is not None and value > high):
                    lp = -math.inf
                elif high is None:
                    lp -= self._call(dist + "_lccdf", [low] + vals)
                elif low is None:
                    lp -= self._call(dist + "_lcdf", [high] + vals)
                else:
                    hi, lo = self._call(dist + "_lcdf", [high] + vals), self._call(dist + "_lcdf", [low] + vals)
                    lp -= hi + math.log1p(-math.exp(lo - hi))
            env["__target"] += lp
        elif kind == "for":
            _, var, lo, hi, body = s
            for i in range(int(self._eval(lo, env)), int(self._eval(hi, env)) + 1):
                env[var] = i
                self._exec(body, env)
        elif kind == "if":
            _, c, then, other = s
            if self._eval(c, env):
                self._exec(then, env)
            elif other is not None:
                self._exec(other, env)
        elif kind == "return":
            raise _Return(self._eval(s[1], env))
        else:
            raise AssertionError(f"statement {kind} outside a functions block")

    def _lp(self, dist, value, vals):
        for suffix in ("_lpdf", "_lpmf"):
            name = dist + suffix
            if name in self.functions or name in BUILTINS:
                return self._call(name, [value] + vals)
        raise KeyError(f"no distribution {dist}")

    def _call(self, name, args):
        if name in self.functions:
            params, body = self.functions[name]
            local = dict(zip(params, args))
            try:
                for st in body:
                    self._exec(st, local)
            except _Return as r:
                return r.value
            raise AssertionError(f"{name} returned nothing")
        return BUILTINS[name](*args)

    # ------------------------------------------------------------ expressions

    def _key(self, idx, env):
        return tuple(slice(None) if i[0] == "all" else int(self._eval(i, env)) - 1 for i in idx)

    def _eval(self, e, env):
        kind = e[0]
        if kind == "num":
            return e[1]
        if kind == "var":
            return env[e[1]]
        if kind == "call":
            return self._call(e[1], [self._eval(a, env) for a in e[2]])
        if kind == "rowvec":
            return np.array([float(self._eval(a, env)) for a in e[1]])
        if kind == "ternary":
            return self._eval(e[2], env) if self._eval(e[1], env) else self._eval(e[3], env)
        if kind == "neg":
            return -self._eval(e[1], env)
        if kind == "not":
            return int(not self._eval(e[1], env))
        if kind == "transpose":
            v = self._eval(e[1], env)
            return v.T if np.ndim(v) == 2 else v
        if kind == "index":
            return np.asarray(self._eval(e[1], env))[self._key(e[2], env)]
        if kind == "bin":
            return _bin(e[1], self._eval(e[2], env), self._eval(e[3], env))
        raise AssertionError(kind)


def _op(op, old, value):
    if op == "=":
        return value
    return {"+=": lambda: old + value, "-=": lambda: old - value, "*=": lambda: old * value}[op]()


def _bin(op, a, b):
    if op == "/" and isinstance(a, int) and isinstance(b, int):
        return int(a / b)  # Stan's integer division truncates
    table = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, ".*": lambda: a * b, "/": lambda: a / b,
        "./": lambda: a / b, "^": lambda: a ** b, "<": lambda: int(a < b), "<=": lambda: int(a <= b),
        ">": lambda: int(a > b), ">=": lambda: int(a >= b), "==": lambda: int(a == b), "!=": lambda: int(a != b),
        "&&": lambda: int(bool(a) and bool(b)), "||": lambda: int(bool(a) or bool(b)), "%/%": lambda: a // b,
        "%": lambda: a % b,
    }
    return table[op]()


def _stmt(t):
    """A statement tree as nested tuples."""
    b = _Build()
    if isinstance(t, Token):
        raise AssertionError(t)
    d = t.data
    c = t.children
    if d == "seq":
        return ("seq", [_stmt(x) for x in c])
    if d == "funcdef":
        params = [str(p.children[1]) for p in c[2:] if isinstance(p, Tree) and p.data == "param"]
        body = [_stmt(x) for x in c[2:] if isinstance(x, Tree) and x.data != "param"]
        return ("func", str(c[1]), params, body)
    if d == "decl":
        return ("decl", _shape(c[0]), str(c[1]), b.transform(c[2]) if c[2] is not None else None)
    if d == "assign":
        return ("assign", b.transform(c[0]), str(c[1]), b.transform(c[2]))
    if d == "tilde":
        trunc = c[-1].children if isinstance(c[-1], Tree) and c[-1].data == "trunc" else None
        args = [b.transform(x) for x in c[2:] if x is not None and not (isinstance(x, Tree) and x.data == "trunc")]
        bounds = tuple(b.transform(x) if x is not None else None for x in trunc) if trunc is not None else None
        return ("tilde", b.transform(c[0]), str(c[1]), args, bounds)
    if d == "target":
        return ("target", b.transform(c[0]))
    if d == "for_":
        return ("for", str(c[0]), b.transform(c[1]), b.transform(c[2]), _stmt(c[3]))
    if d == "if_":
        return ("if", b.transform(c[0]), _stmt(c[1]), _stmt(c[2]) if c[2] is not None else None)
    if d == "ret":
        return ("return", b.transform(c[0]))
    raise AssertionError(d)


def _shape(t) -> list:
    """The dims of a declared type (arrays first)."""
    b = _Build()
    if t.data == "array_type":
        return [b.transform(x) for x in t.children[:-1]] + _shape(t.children[-1])
    return [b.transform(x) for x in t.children[1:] if x is not None]


def _blocks(code: str) -> dict[str, str]:
    """The text inside each top-level block."""
    out: dict[str, str] = {}
    current, depth, lines = None, 0, []
    for line in code.splitlines():
        text = line.strip()
        if depth == 0 and text.endswith("{"):
            current, lines = text[:-1].strip(), []
        elif depth == 1 and text == "}":
            out[current] = "\n".join(lines)
        else:
            lines.append(line)
        depth += text.count("{") - text.count("}")
    return out
