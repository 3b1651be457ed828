"""Graphs of tensor operations captured from Pyro programs and compiled with inductor, with fallbacks.

Pyro runs a model and a guide by interpreting them through its messenger stack: about 1,600 Python
calls per training step, whatever the batch size. :func:`capture` records, once per input shape,
the tensor operations such a computation performs (``torch.fx.experimental.proxy_tensor.make_fx``,
at the dispatcher level, below autograd: a backward pass taken inside is recorded too), so that
replaying the graph runs the same operations without the interpreter. :func:`compile_graph` hands
that graph to inductor, which fuses its elementwise operations and reductions into generated C++.

What a graph keeps and what it bakes in:

- Random draws (``normal_``, ``bernoulli``, ``multinomial``) are operations of the graph, so every
  call draws afresh from torch's global generator, in the order eager code would. Inductor is told
  to call the same ATen kernels for them (``fallback_random``), so a graph draws exactly the
  numbers eager Pyro draws from the same state: seeding, checkpointed RNG states and resumes behave
  as in eager training.
- Shapes, Python numbers (``num_data``, an IWAE's K) and Python control flow are baked in: a graph
  is valid for one input shape, and a program whose control flow reads a tensor's value cannot be
  captured (``make_fx`` refuses to read a traced value) and runs eagerly.
- Tensors the function reads but is not given (a prior's buffers) are referenced, not copied.

:func:`build` makes the callable a caller asked for (``mode``: ``"compiled"``, ``"captured"`` or
``"eager"``) and falls back one route at a time, with one :class:`CompiledStepWarning` line saying
which and why: inductor failing (no C++ compiler, say) leaves the captured graph, a capture failing
leaves eager code. Each graph is checked once against the eager computation on the same draws before
it is used (capturing runs the function for real, so that costs one replay).

Inductor's first compilation of a graph takes seconds (about 5 s for the 784-400-20 demo
network's training step on a quiet core); its on-disk caches (FX graph and AOT autograd caches,
under ``TORCHINDUCTOR_CACHE_DIR``) make later compilations of the same graph, in this or any later
process (a resumed run), take about a second.
"""

import contextlib
import logging
import warnings

import pyro
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from ..errors import UserError

MODES = ("compiled", "captured", "eager")  # fastest first: each falls back to the next
RTOL = 1e-3  # a graph further than this from eager on its check (relative to the norm) is not used


class CompiledStepWarning(UserWarning):
    """A step or an evaluation runs on a slower route than asked for (the captured graph without
    inductor, or eager Pyro), and the one-line message says why."""


def check_mode(mode, param="step"):
    """``mode`` if it is one of :data:`MODES`, else a :class:`~pyro_vae.errors.UserError` naming ``param``."""
    if mode not in MODES:
        raise UserError(f"{param} must be one of {', '.join(MODES)}, got {mode!r}", param=param)
    return mode


def capture(fn, inputs, outputs=None):
    """``fn(*inputs)``, a flat tuple of tensors, as a ``torch.fx.GraphModule`` of ATen operations.

    The function runs once for real while it is recorded (at the caller's RNG state: fork it to keep
    the stream), with Pyro's validation off (its checks read tensor values). ``outputs``, a list, receives
    that run's results. Dead operations are removed.

    :raises RuntimeError: (among others) when the function's control flow reads a traced tensor's value,
        or when it modifies one of its inputs in place.

    Example::

        >>> gm = capture(lambda a, b: (torch.relu(a) * b,), [torch.randn(3), torch.randn(3)])
        >>> [node.target.__name__ for node in gm.graph.nodes if node.op == "call_function"]
        ['relu.default', 'mul.Tensor']
    """
    def flat(*args):
        out = tuple(fn(*args))
        if outputs is not None:
            outputs.extend(t.detach() for t in out)
        return out

    with pyro.validation_enabled(False):
        gm = make_fx(flat, tracing_mode="real")(*inputs)
    for node in gm.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op == "call_function" and schema is not None and schema.is_mutable:
            mutated = [a for a, arg in zip(node.args, schema.arguments, strict=False)
                       if arg.alias_info is not None and arg.alias_info.is_write and hasattr(a, "op")]
            if any(a.op in ("placeholder", "get_attr") for a in mutated):
                raise RuntimeError(f"the computation modifies a tensor it was given in place ({node.target})")
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


class _QuietCppExtension(logging.Filter):
    """Drops torch.utils.cpp_extension's "No CUDA runtime is found" line, which inductor's import logs
    on a machine without CUDA (nothing is wrong: it compiles for the CPU)."""

    def filter(self, record):
        return "No CUDA runtime" not in record.getMessage()


@contextlib.contextmanager
def _quiet_inductor():
    logger, quiet = logging.getLogger("torch.utils.cpp_extension"), _QuietCppExtension()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def compile_graph(gm, inputs):
    """``gm`` compiled by inductor for ``inputs``' shapes, dtypes and devices: a callable taking tensors
    like ``inputs`` and returning the same outputs (call it under ``torch.no_grad()``).

    Random operations call torch's own kernels (``fallback_random``), so they draw what eager code
    draws. The graph is compiled under a static shape environment, which lets inductor's on-disk
    caches serve a graph compiled before. Compilation runs in this process (one compile thread).
    """
    with _quiet_inductor():
        import torch._guards as guards
        import torch._inductor.config as inductor_config
        from torch._inductor.compile_fx import compile_fx
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        fake_mode = FakeTensorMode(shape_env=ShapeEnv())
        fakes = [fake_mode.from_tensor(t, static_shapes=True) for t in inputs]
        with inductor_config.patch(fallback_random=True, compile_threads=1), \
                guards.tracing(guards.TracingContext(fake_mode)), torch.no_grad():
            return compile_fx(gm, fakes)


def _rng_devices(inputs):
    return sorted({t.device for t in inputs if t.device.type == "cuda"}, key=str)


def _distance(a, b):
    """Largest relative difference ``|a - b| / |a|`` (norms) over pairs of outputs; 0 for equal NaNs."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return float("inf")
        x, y = x.double(), y.double()
        both_nan = torch.isnan(x) & torch.isnan(y)
        x, y = torch.where(both_nan, 0.0, x), torch.where(both_nan, 0.0, y)
        worst = max(worst, ((x - y).norm() / x.norm().clamp_min(1e-30)).item())
    return worst


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def build(fn, inputs, mode="compiled", what="the training step"):
    """The callable ``mode`` asks for, for inputs shaped like ``inputs``: ``(callable, route)``.

    ``route`` is ``"compiled"`` (inductor), ``"captured"`` (the graph replayed as recorded) or
    ``"eager"`` (``fn`` itself). Each route is checked against eager ``fn`` on the same draws before
    it is used; a route that fails to build or to match falls back to the next, with one
    :class:`CompiledStepWarning` naming ``what``, the route taken and why. Torch's RNG streams are left
    as they were. The returned callables expect ``torch.no_grad()`` unless ``fn`` itself is returned.
    """
    check_mode(mode, "mode")
    if mode == "eager":
        return fn, "eager"
    with torch.random.fork_rng(devices=_rng_devices(inputs)):
        state = torch.random.get_rng_state()
        cuda_states = [torch.cuda.get_rng_state(d) for d in _rng_devices(inputs)]

        def replay(f):
            torch.random.set_rng_state(state)
            for d, s in zip(_rng_devices(inputs), cuda_states, strict=True):
                torch.cuda.set_rng_state(s, d)
            with torch.no_grad():
                return tuple(f(*inputs))

        reference = []
        try:
            graph = capture(fn, inputs, outputs=reference)
            distance = _distance(reference, replay(graph))
            if distance > RTOL:
                raise RuntimeError(f"its replay differs from eager Pyro by {distance:.1e} (relative)")
        except Exception as e:  # anything: the eager route still works, or fails there with its own error
            _warn(f"{what} runs eagerly (Pyro's interpreter on every call): it could not be captured as a graph "
                  f"({_first_line(e)})")
            return fn, "eager"
        if mode == "captured":
            return graph, "captured"
        try:
            compiled = compile_graph(graph, [t.detach() for t in inputs])
            distance = _distance(reference, replay(compiled))
            if distance > RTOL:
                raise RuntimeError(f"its result differs from eager Pyro by {distance:.1e} (relative)")
        except Exception as e:  # a missing or failing C++ compiler, an inductor error
            _warn(f"{what} replays its captured graph without inductor: compiling it failed ({_first_line(e)})")
            return graph, "captured"
        return compiled, "compiled"


def _warn(message):
    warnings.warn(message, CompiledStepWarning, stacklevel=4)
